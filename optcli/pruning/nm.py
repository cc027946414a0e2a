"""N:M semi-structured pruning: in every group of M consecutive input weights of each output
row, keep the N of largest |w| (2:4 is what NVIDIA Ampere sparse tensor cores run:
Mishra et al., "Accelerating Sparse Deep Neural Networks", 2021; Zhou et al., "Learning N:M
Fine-grained Structured Sparse Neural Networks From Scratch", ICLR 2021).

A linear weight [out, in] is grouped along `in`; a conv weight [O, C, kh, kw] along the
flattened C*kh*kw axis. `in` must be a multiple of M. The sparsity is exactly 1 - N/M.

    steps:
      - prune: {method: nm, n: 2, m: 4}
"""

from __future__ import annotations

from typing import Any

import numpy as np

from optcli.errors import StepError


def prune_layers(weights: list[np.ndarray], config: Any, inputs: Any,
                 rng: np.random.Generator) -> list[np.ndarray]:
    for i, w in enumerate(weights):         # the step checks first, naming the layers
        check_divisible(w, config.m, f"#{i}")
    return [np.where(nm_mask(np.abs(w), config.n, config.m), w, 0).astype(np.float32)
            for w in weights]


def check_divisible(w: np.ndarray, m: int, name: str) -> None:
    """StepError naming layer `name` unless its inputs per row (size / out) divide by m."""
    cols = w.size // w.shape[0]
    if cols % m:
        raise StepError(f"prune nm: layer '{name}' has {cols} inputs per row, not a multiple "
                        f"of m={m}")


def nm_mask(scores: np.ndarray, n: int, m: int) -> np.ndarray:
    """Keep-mask keeping the n highest scores in each group of m along the flattened input
    axis: scores [out, ...] -> groups [out, in/m, m] (ties by position, via argsort)."""
    groups = scores.reshape(scores.shape[0], -1, m)
    order = np.argsort(-groups, axis=-1, kind="stable")       # [out, in/m, m], best first
    keep = np.zeros(groups.shape, bool)
    np.put_along_axis(keep, order[..., :n], True, axis=-1)
    return keep.reshape(scores.shape)
