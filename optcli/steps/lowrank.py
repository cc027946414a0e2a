"""The lowrank step: factorize linear layers W[out, in] ~ A[out, r] B[r, in] by truncated SVD,
so each runs as two smaller matmuls (optcli/lowrank/).

- svd: plain truncated SVD, the best rank-r approximation of the weights (Eckart & Young
  1936; Denton et al., "Exploiting Linear Structure Within Convolutional Networks", 2014).
- whitened: data-aware, minimises the layer's output error on the calibration inputs by
  whitening with the Cholesky factor of their Gram matrix X^T X (SVD-LLM, Wang et al. 2024;
  ASVD, Yuan et al. 2023); needs a `calibration:` section.

The rank comes from exactly one of `rank`, `energy` (the smallest rank keeping that fraction of
the squared singular values, of W L for whitened, i.e. of the output energy) or `params` (the
fraction of each layer's weight parameters the two factors may hold).

    calibration: {data: calib.npz, samples: 128}
    steps:
      - lowrank: {method: whitened, params: 0.5, layers: ["*.mlp.*"]}
      - lowrank: {method: svd, energy: 0.95}

A rank that saves no parameters (r * (in + out) >= in * out) is refused with a note and the
layer is left as it was. Factors are stored dense float32: a pruned layer loses its sparsity
mask and a quantized (or otherwise coded) one is decoded to float (both noted). Only linear
layers are factorized; selected conv layers and layers whose weight is shared with another
node are skipped (noted).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from optcli.calibration import layer_inputs
from optcli.errors import StepError
from optcli.formats import DenseTensor, SparseTensor, StoredTensor
from optcli.graph import Model, Node
from optcli.lowrank.rewrite import factorize_linear, weight_is_shared
from optcli.lowrank.svd import choose_rank, decompose, relative_errors, saves_params
from optcli.params import param
from optcli.steps.base import StepContext, StepRecord, select_layers

DESCRIPTION = ("Factorize linear layers into two smaller ones by truncated SVD, plain or "
               "whitened by calibration activations (SVD-LLM).")


@dataclass(frozen=True)
class Config:
    method: str = param("svd", "svd: minimise the weight error; whitened: the output error on "
                        "calibration inputs (needs calibration:)", choices=("svd", "whitened"))
    rank: int | None = param(None, "keep this many singular values per layer", type=int,
                             check=lambda v: v >= 1, check_doc=">= 1")
    energy: float | None = param(None, "keep the smallest rank holding this fraction of the "
                                 "squared singular values", type=float,
                                 check=lambda v: 0 < v <= 1, check_doc="0 < energy <= 1")
    params: float | None = param(None, "fraction of each layer's weight parameters the two "
                                 "factors may hold", type=float,
                                 check=lambda v: 0 < v < 1, check_doc="0 < params < 1")
    damping: float = param(0.01, "whitened: ridge added to the Gram matrix diagonal, as a "
                           "fraction of its mean (x10 up to 3 times if still singular)",
                           check=lambda v: v > 0, check_doc="> 0")
    layers: list = param(["*"], "glob patterns of layer (node) names to factorize")
    exclude: list = param([], "glob patterns of layer names to leave alone")


def check(config: Config) -> str | None:
    """Exactly one rank criterion must be given."""
    given = [k for k in ("rank", "energy", "params") if getattr(config, k) is not None]
    if len(given) != 1:
        return ("give exactly one of 'rank', 'energy', 'params'"
                + (f" (got {', '.join(given)})" if given else ""))
    return None


def needs_calibration(config: Config) -> bool:
    return config.method == "whitened"


def apply(model: Model, config: Config, context: StepContext) -> tuple[Model, StepRecord]:
    problem = check(config)
    if problem:
        raise StepError(f"lowrank: {problem}")
    record = StepRecord("lowrank", {})
    nodes = _eligible(model, config, record.notes)
    grams = _grams(model, nodes, config, context)
    out = model
    for node in nodes:
        old = model.tensors[node.inputs["weight"]]
        w = old.decode()                                              # [out, in] float32
        gram = grams.get(node.name)
        dec = decompose(w, gram, config.damping)
        r = choose_rank(dec.s, w.shape, config.rank, config.energy, config.params)
        if not saves_params(r, w.shape):
            record.notes.append(f"{node.name}: rank {r} of a {w.shape[0]}x{w.shape[1]} layer "
                                f"saves no parameters (needs rank < "
                                f"{w.size / sum(w.shape):.1f}); not factorized")
            continue
        a, b = dec.factors(r)
        out = factorize_linear(out, node.name, a, b)
        record.notes.extend(_encoding_notes(node.name, old))
        record.layers.append(_row(node, w, a, b, dec.s, r, gram, old))
    return out, record


def _eligible(model: Model, config: Config, notes: list[str]) -> list[Node]:
    """Selected linear layers whose weight is 2-D and read by no other node."""
    nodes = []
    for n in select_layers(model, config.layers, config.exclude):
        if n.op != "linear":
            notes.append(f"{n.name}: {n.op} layers are not factorized; skipped")
        elif weight_is_shared(model, n):
            notes.append(f"{n.name}: weight '{n.inputs['weight']}' is shared with another "
                         "node; skipped")
        elif len(model.tensors[n.inputs["weight"]].shape) != 2:
            notes.append(f"{n.name}: weight is not 2-D; skipped")
        else:
            nodes.append(n)
    return nodes


def _grams(model: Model, nodes: list[Node], config: Config,
           context: StepContext) -> dict[str, np.ndarray]:
    """Layer name -> X^T X [in, in] of its calibration inputs (whitened only), in one pass
    over the calibration set on the step's input model."""
    if config.method != "whitened" or not nodes:
        return {}
    if context.calibration is None:
        raise StepError("lowrank method 'whitened' needs a calibration: section in the pipeline")
    stats = layer_inputs(model, nodes, context.calibration(), hessian=True)
    return {n.name: stats[n.name].hessian for n in nodes}


def _encoding_notes(name: str, old: StoredTensor) -> list[str]:
    """Warnings for what dense float factors lose of the stored encoding."""
    notes = []
    if isinstance(old, SparseTensor):
        notes.append(f"{name}: the weight was sparse (pruned); its mask is lost, the factors "
                     "are dense")
    coded = not isinstance(old, (DenseTensor, SparseTensor))     # int8, codebook, entropy...
    if coded or getattr(old, "scale", None) is not None:            # ... or sparse int8
        notes.append(f"{name}: the weight was {old.describe()}; decoded to float32 factors")
    return notes


def _row(node: Node, w: np.ndarray, a: np.ndarray, b: np.ndarray, s: np.ndarray, r: int,
         gram: np.ndarray | None, old: StoredTensor) -> dict:
    """The record row of one factorized layer."""
    kept = float(np.sum(s[:r] ** 2) / max(np.sum(s ** 2), 1e-300))
    return {"layer": node.name, "shape": list(w.shape), "rank": r,
            "params_before": int(w.size), "params_after": int(a.size + b.size),
            "encoding_before": old.describe(), "energy_kept": round(kept, 6),
            **{k: round(v, 6) for k, v in relative_errors(w, a, b, gram).items()}}
