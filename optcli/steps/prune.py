"""Magnitude pruning: zero the weights of smallest absolute value, store the result sparse.

Han, Pool, Tran, Dally, "Learning both Weights and Connections for Efficient Neural Networks",
NeurIPS 2015. `scope: layer` prunes each layer to exactly `sparsity`; `scope: global` ranks all
selected weights together, so layers with many small weights lose more.

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
from optcli.steps.base import StepContext, StepRecord, select_layers

DESCRIPTION = "Zero the smallest-magnitude weights (per layer or global) and store them sparse."


@dataclass(frozen=True)
class Config:
    method: str = param("magnitude", "pruning criterion", choices=("magnitude",))
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
    if config.scope == "global":
        masks = _global_masks(weights, config.sparsity)
    else:
        masks = [_layer_mask(w, config.sparsity) for w in weights]
    tensors = dict(model.tensors)
    record = StepRecord("prune", {})
    for node, name, w, keep in zip(nodes, names, weights, masks):
        old = model.tensors[name]
        tensors[name] = _store_pruned(old, w, keep)
        record.layers.append({
            "layer": node.name, "tensor": name,
            "sparsity_before": round(1 - old.nonzeros / old.size, 6),
            "sparsity_after": round(1 - tensors[name].nonzeros / old.size, 6),
            "encoding": tensors[name].describe(),
            "bytes_before": old.nbytes, "bytes_after": tensors[name].nbytes})
    return model.replace(tensors=tensors), record


def _layer_mask(w: np.ndarray, sparsity: float) -> np.ndarray:
    """Keep-mask zeroing exactly round(sparsity * size) weights of smallest |w| (ties by index)."""
    k = int(round(sparsity * w.size))
    keep = np.ones(w.size, bool)
    if k:
        keep[np.argpartition(np.abs(w).ravel(), k - 1, kind="introselect")[:k]] = False
    return keep.reshape(w.shape)


def _global_masks(weights: list[np.ndarray], sparsity: float) -> list[np.ndarray]:
    """One ranking over all weights; the k smallest |w| anywhere are zeroed."""
    flat = np.concatenate([np.abs(w).ravel() for w in weights])
    keep = _layer_mask(flat, sparsity)
    bounds = np.cumsum([0] + [w.size for w in weights])
    return [keep[a:b].reshape(w.shape) for a, b, w in zip(bounds[:-1], bounds[1:], weights)]


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
