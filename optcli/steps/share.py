"""The share step: weight sharing by k-means clustering (Deep Compression: Han, Mao, Dally,
ICLR 2016, §3), scalar or over whole units.

Scalar mode: the weights of each selected layer are clustered into at most 2**bits values by
exact 1-D Lloyd k-means (sharing/kmeans1d.py; init `linear` is the paper's best, `density`
and `random` are its other two) and stored as bit-packed `bits`-bit indices plus a float32
codebook (the `codebook` encoding). A pruned (sparse) layer stays sparse with the same mask:
only its nonzeros are clustered, zero is never a centroid and stays exactly zero, and its
values become uint8/uint16 codebook indices. With `shared: true` all selected layers are
clustered together into one set of centroids; each tensor stores the entries it uses, so a file
stays readable tensor by tensor (at most 2**bits floats each: 128 bytes at 5 bits).

Vector mode: each layer's units (`row` of a linear or conv weight, conv `filter`
[C*kh*kw] or conv `kernel` [kh*kw]) are clustered into `clusters` shared units (default
2**bits) by k-means (sharing/vectors.py; init `linear` = units at evenly spaced norm ranks,
`kmeans++` = seeded D² sampling) and each unit stores an index: "similar kernels share one
parameter set". A unit that does not fit a layer (kernel on a linear) skips it with a note;
a pruned layer is refused, since a shared unit would fill its zeros.

The record gives per layer the relative reconstruction error ||W - Ŵ|| / ||W|| and the SQNR
(10 log10 ||W||² / ||W - Ŵ||², null when exact). A quantize step after share is refused
unless it sets `requantize_shared: true`; prune after share decodes the shared values.

    steps:
      - prune: {sparsity: 0.9, scope: global}
      - share: {bits: 5, init: linear}
      - share: {mode: vector, unit: kernel, clusters: 16, layers: [conv*]}
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from optcli.errors import StepError
from optcli.formats import CodebookTensor, SparseTensor, StoredTensor
from optcli.formats.codebook import index_bits, unit_dim
from optcli.graph import Model, Node
from optcli.params import param
from optcli.sharing.error import relative_error
from optcli.sharing.kmeans1d import assign, kmeans1d
from optcli.sharing.vectors import kmeans_vectors
from optcli.steps.base import StepContext, StepRecord, select_layers

DESCRIPTION = ("Weight sharing: k-means cluster each layer's weights (or rows, filters, "
               "kernels) into 2^bits shared values stored as bit-packed indices + a codebook.")

SCALAR_INITS = ("linear", "density", "random")
VECTOR_INITS = ("linear", "kmeans++")


@dataclass(frozen=True)
class Config:
    bits: int = param(5, "index bits: at most 2**bits shared values per layer",
                      check=lambda v: 1 <= v <= 8, check_doc="1 <= bits <= 8")
    init: str = param("linear", "centroid initialisation: scalar linear | density | random; "
                      "vector linear (norm ranks) | kmeans++", choices=("linear", "density",
                                                                        "random", "kmeans++"))
    mode: str = param("scalar", "share single weights or whole units", choices=("scalar",
                                                                                  "vector"))
    unit: str = param("row", "vector mode: what one index stands for",
                      choices=("row", "filter", "kernel"))
    clusters: int | None = param(None, "vector mode: shared units per layer (default 2**bits)",
                                 type=int, check=lambda v: 1 <= v <= 65536,
                                 check_doc="1 <= clusters <= 65536")
    shared: bool = param(False, "scalar mode: one set of centroids for all selected layers")
    iterations: int = param(1000, "at most this many Lloyd iterations (stops earlier at a "
                            "fixed point)", check=lambda v: v >= 1, check_doc=">= 1")
    layers: list = param(["*"], "glob patterns of layer (node) names to share")
    exclude: list = param([], "glob patterns of layer names to leave alone")


def check(config: Config) -> str | None:
    """Cross-parameter rules, found when the YAML is parsed."""
    if config.mode == "scalar" and config.init not in SCALAR_INITS:
        return f"init '{config.init}' is for mode vector; scalar: {', '.join(SCALAR_INITS)}"
    if config.mode == "scalar" and config.clusters is not None:
        return "clusters applies to mode vector; scalar mode uses 2**bits"
    if config.mode == "vector" and config.init not in VECTOR_INITS:
        return f"init '{config.init}' is for mode scalar; vector: {', '.join(VECTOR_INITS)}"
    if config.mode == "vector" and config.shared:
        return "shared applies to mode scalar (vector codebooks are per layer)"
    return None


def apply(model: Model, config: Config, context: StepContext) -> tuple[Model, StepRecord]:
    problem = check(config)
    if problem:
        raise StepError(f"share: {problem}")
    nodes = select_layers(model, config.layers, config.exclude)
    record = StepRecord("share", {})
    tensors = dict(model.tensors)
    if config.mode == "vector":
        new = {n.name: _share_vectors(n, model.tensors[n.inputs["weight"]], config,
                                      context.rng(i), record.notes)
               for i, n in enumerate(nodes)}
    else:
        new = _share_scalars(nodes, model, config, context)
    for node in nodes:
        name, t = node.inputs["weight"], new[node.name]
        if t is None:
            continue
        tensors[name] = t
        record.layers.append(_layer_row(node, model.tensors[name], t))
        if t.nbytes >= model.tensors[name].nbytes:
            record.notes.append(f"{node.name}: the shared form is not smaller "
                                f"({t.nbytes} vs {model.tensors[name].nbytes} bytes)")
        if model.tensors[name].encoding not in ("dense", "sparse", "codebook"):
            record.notes.append(f"{node.name}: {model.tensors[name].describe()} weights "
                                "decoded to float before sharing")
    return model.replace(tensors=tensors), record


def _share_scalars(nodes: list[Node], model: Model, config: Config,
                   context: StepContext) -> dict[str, StoredTensor]:
    """Per layer (or jointly with `shared`) 1-D k-means of the stored values."""
    k = 2 ** config.bits
    values = [_values(model.tensors[n.inputs["weight"]]) for n in nodes]
    if config.shared and values:
        joint, _ = kmeans1d(np.concatenate(values), k, config.init, config.iterations,
                            context.rng(0))
        shared = [assign(v, joint) for v in values]
    else:
        shared = [kmeans1d(v, k, config.init, config.iterations, context.rng(i))
                  for i, v in enumerate(values)]
    return {n.name: _store(model.tensors[n.inputs["weight"]], book, index)
            for n, (book, index) in zip(nodes, shared)}


def _values(t: StoredTensor) -> np.ndarray:
    """What is clustered: a sparse tensor's stored nonzeros [nnz], else all weights [size]."""
    return t.float_values() if isinstance(t, SparseTensor) else t.decode().reshape(-1)


def _store(old: StoredTensor, book: np.ndarray, index: np.ndarray) -> StoredTensor:
    """A sparse tensor keeps its pattern with codebook indices as values; others become a
    bit-packed CodebookTensor."""
    if isinstance(old, SparseTensor):
        dtype = np.uint8 if book.size <= 256 else np.uint16
        return old.with_values(index.astype(dtype), None, book.astype(np.float32))
    return CodebookTensor.from_index(old.shape, index, book)


def _share_vectors(node: Node, old: StoredTensor, config: Config, rng: np.random.Generator,
                   notes: list[str]) -> StoredTensor | None:
    """Vector k-means of the layer's units; None (with a note) if the unit does not fit."""
    if isinstance(old, SparseTensor):
        raise StepError(f"share: layer '{node.name}' is pruned (sparse); vector sharing would "
                        "fill its zeros: exclude it or use mode scalar")
    d = unit_dim(old.shape, config.unit)
    if d is None:
        notes.append(f"{node.name}: unit '{config.unit}' needs a 4-D conv weight "
                     f"(shape {list(old.shape)}); layer skipped")
        return None
    units = old.decode().reshape(-1, d)                           # [count, d], row-major
    init = "norm" if config.init == "linear" else "kmeans++"
    book, index = kmeans_vectors(units, config.clusters or 2 ** config.bits, init,
                                 config.iterations, rng)
    return CodebookTensor.from_index(old.shape, index, book, unit=config.unit)


def _layer_row(node: Node, old: StoredTensor, new: StoredTensor) -> dict:
    w = old.decode()
    rel, sqnr = relative_error(w, new.decode())
    entries = new.codebook.shape[0]
    count = new.count if isinstance(new, CodebookTensor) else new.values.size
    stored = new.bits if isinstance(new, CodebookTensor) else 8 * new.values.itemsize
    return {"layer": node.name, "tensor": node.inputs["weight"], "weights": old.size,
            "nonzeros": new.nonzeros, "clusters": entries, "bits": index_bits(entries),
            "index_bits_per_weight": round(stored * count / max(old.size, 1), 4),
            "rel_error": round(rel, 6), "sqnr_db": None if np.isinf(sqnr) else round(sqnr, 3),
            "encoding": new.describe(), "bytes_before": old.nbytes, "bytes_after": new.nbytes}
