"""Torch-vs-optcli checks and the evaluation figures (accuracy, perplexity).

A model is saved only if optcli's reference and fast runtimes both reproduce torch's outputs to
TOLERANCE, measured as max |optcli - torch| / max |torch| (float32 rounding is ~1e-7 of that).
"""

from __future__ import annotations

import sys

import numpy as np
import torch
from torch import nn

from optcli.graph import Model
from optcli.runtime import Runtime

from .progress import log

TOLERANCE = 1e-4                     # max |optcli - torch| relative to max |torch|


def torch_outputs(net: nn.Module, x: np.ndarray, batch: int = 1000) -> np.ndarray:
    with torch.no_grad():
        xt = torch.from_numpy(x if x.dtype == np.int64 else x.astype(np.float32))
        return torch.cat([net(c) for c in xt.split(batch)]).numpy()


def optcli_outputs(model: Model, x: np.ndarray, kernels: str = "fast",
                   batch: int = 1000) -> np.ndarray:
    rt, key = Runtime(model, kernels=kernels), model.graph.inputs[0].name
    return np.concatenate([rt.run({key: x[i:i + batch]})["logits"]
                           for i in range(0, len(x), batch)])


def verify(model: Model, net: nn.Module, x: np.ndarray) -> dict[str, float]:
    """Max |optcli - torch| / max |torch| on x, per kernel set; exits on a mismatch."""
    want = torch_outputs(net, x)
    diffs = {}
    for kernels in ("reference", "fast"):
        got = optcli_outputs(model, x, kernels)
        diffs[kernels] = float(np.abs(got - want).max() / np.abs(want).max())
    log(f"{model.name}: relative max diff vs torch {diffs}")
    if max(diffs.values()) > TOLERANCE:
        sys.exit(f"{model.name}: optcli output differs from torch ({diffs}); not saved")
    return diffs


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    return float((logits.argmax(-1) == labels).mean())


def perplexity(logits: np.ndarray, ids: np.ndarray) -> float:
    """Per-character perplexity of ids[:, 1:] given logits[:, :-1] (float64 log-softmax)."""
    z = logits[:, :-1].astype(np.float64)
    z = z - z.max(-1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
    nll = -np.take_along_axis(logp, ids[:, 1:, None], -1)
    return float(np.exp(nll.mean()))
