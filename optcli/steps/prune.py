"""The prune step: zero weights of the selected layers and store them sparse.

The method (optcli/pruning/) decides which weights go:
- magnitude: smallest |w| (Han et al., NeurIPS 2015), per layer or global.

    steps:
      - prune: {method: magnitude, sparsity: 0.9, scope: global, exclude: [fc3]}

Weights already zero count towards the sparsity. The pruned tensor is stored in the sparse
encoding (csr or bitmask, whichever is smaller); a symmetric per-output-channel int8 tensor
stays int8 (its codes are pruned, its scales kept).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from optcli.formats import QuantizedTensor, SparseTensor, StoredTensor
from optcli.graph import Model
from optcli.params import param
from optcli.pruning import METHODS
from optcli.steps.base import StepContext, StepRecord, select_layers

DESCRIPTION = "Zero the smallest-magnitude weights (per layer or global) and store them sparse."


@dataclass(frozen=True)
class Config:
    method: str = param("magnitude", "pruning criterion", choices=tuple(METHODS))
    sparsity: float = param(0.5, "fraction of each selected weight tensor set to zero",
                            check=lambda v: 0.0 <= v < 1.0, check_doc="0 <= sparsity < 1")
    scope: str = param("layer", "rank weights per layer or across all selected layers",
                       choices=("layer", "global"))
    layers: list = param(["*"], "glob patterns of layer (node) names to prune")
    exclude: list = param([], "glob patterns of layer names to leave alone")


def apply(model: Model, config: Config, context: StepContext) -> tuple[Model, StepRecord]:
    nodes = select_layers(model, config.layers, config.exclude)
    names = [n.inputs["weight"] for n in nodes]
    weights = [model.tensors[t].decode() for t in names]
    pruned = METHODS[config.method](weights, config, None, context.rng())
    tensors = dict(model.tensors)
    record = StepRecord("prune", {})
    for node, name, w in zip(nodes, names, pruned):
        old = model.tensors[name]
        tensors[name] = _store_pruned(old, w, w != 0)
        record.layers.append({
            "layer": node.name, "tensor": name,
            "sparsity_before": round(1 - old.nonzeros / old.size, 6),
            "sparsity_after": round(1 - tensors[name].nonzeros / old.size, 6),
            "encoding": tensors[name].describe(),
            "bytes_before": old.nbytes, "bytes_after": tensors[name].nbytes})
    return model.replace(tensors=tensors), record


def _store_pruned(old: StoredTensor, w: np.ndarray, keep: np.ndarray) -> StoredTensor:
    if (isinstance(old, QuantizedTensor) and old.zero_point is None and old.axis == 0
            and len(old.shape) >= 1):
        codes = np.where(keep, old.codes, 0).astype(np.int8)
        sparse = SparseTensor.from_dense(codes.astype(np.float32))
        return sparse.with_values(sparse.values.astype(np.int8), old.scale.copy())
    if isinstance(old, SparseTensor) and old.scale is not None:
        scale = old.scale.reshape((-1,) + (1,) * (w.ndim - 1))
        codes = np.where(keep, np.rint(w / scale), 0).astype(np.float32)
        sparse = SparseTensor.from_dense(codes)
        return sparse.with_values(sparse.values.astype(np.int8), old.scale.copy())
    return SparseTensor.from_dense(np.where(keep, w, 0).astype(np.float32))
