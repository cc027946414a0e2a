"""SmoothQuant (Xiao et al., ICML 2023): move activation outliers into the weights.

For a group of linear layers that read one input X[N, in], with per-channel maxima
max|X_j| (calibration) and max|W_j| (over every row of every layer in the group):

    s_j = max|X_j|^alpha / max|W_j|^(1 - alpha)           (1 where either max is 0)
    X W^T = (X diag(1/s)) (W diag(s))^T                   exactly, in real arithmetic

so W <- W diag(s) and X is divided by s. The division is folded into the producer of X when it
is a layernorm/rmsnorm whose output only the group reads (weight and bias / s, free at run
time; q/k/v of a pre-LN block share one norm and one s, as in the paper); otherwise a `mul`
node by 1/s is inserted before the group (e.g. post-LN BERT, whose norm also feeds the
residual, or the input of an FFN's down projection).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from optcli.formats import DenseTensor
from optcli.graph import Model, Node
from optcli.lowrank.rewrite import _free, _names

S_MIN, S_MAX = 1e-5, 1e5        # clamp, as the reference implementation does (min 1e-5)
NORMS = ("layernorm", "rmsnorm")


def smoothing_scales(xmax: np.ndarray, wmax: np.ndarray, alpha: float) -> np.ndarray:
    """s[in] = xmax^alpha / wmax^(1 - alpha), float64; 1 for dead channels."""
    ok = (xmax > 0) & (wmax > 0)
    s = np.ones_like(xmax, dtype=np.float64)
    s[ok] = xmax[ok] ** alpha / wmax[ok] ** (1 - alpha)
    return np.clip(s, S_MIN, S_MAX)


def smooth_group(model: Model, value: str, layers: list[Node], s: np.ndarray) -> tuple[Model, str]:
    """The model with W <- W diag(s) for every layer in `layers` (all read `value`) and X / s
    folded into its norm or applied by a new mul; returns (model, 'folded into <norm>' or
    'mul <node>')."""
    tensors = dict(model.tensors)
    for n in layers:
        w = model.tensors[n.inputs["weight"]].decode()                     # [out, in]
        tensors[n.inputs["weight"]] = DenseTensor((w * s[None, :]).astype(np.float32))
    model = model.replace(tensors=tensors)
    norm = _foldable_norm(model, value, layers)
    if norm is not None:
        return _fold(model, norm, s), f"folded into {norm.name}"
    return _insert_mul(model, value, layers, s)


def _foldable_norm(model: Model, value: str, layers: list[Node]) -> Node | None:
    """The layernorm/rmsnorm producing `value` if only `layers` read it and its weight and
    bias are dense tensors that nothing else reads."""
    g = model.graph
    producer = next((n for n in g.nodes if n.outputs[0] == value), None)
    if producer is None or producer.op not in NORMS or value in {v.name for v in g.outputs}:
        return None
    readers = {n.name for n in g.nodes if value in n.input_names()}
    params = [producer.inputs[r] for r in ("weight", "bias") if r in producer.inputs]
    uses = [v for n in g.nodes for v in n.input_names()]
    if readers != {n.name for n in layers} or any(
            p not in model.tensors or model.tensors[p].encoding != "dense" or uses.count(p) != 1
            for p in params):
        return None
    return producer


def _fold(model: Model, norm: Node, s: np.ndarray) -> Model:
    """norm weight (and bias) / s: the norm's output becomes X diag(1/s)."""
    tensors = dict(model.tensors)
    for role in ("weight", "bias"):
        if role in norm.inputs:
            t = norm.inputs[role]
            tensors[t] = DenseTensor((model.tensors[t].decode() / s).astype(np.float32))
    return model.replace(tensors=tensors)


def _insert_mul(model: Model, value: str, layers: list[Node],
                s: np.ndarray) -> tuple[Model, str]:
    """A `mul` node x * (1/s) right before the first layer of the group, which reads it."""
    taken = _names(model)
    name = _free(f"{layers[0].name}.smooth", taken)
    scale = _free(f"{layers[0].name}.smooth_scale", taken)
    mul = Node(name, "mul", {"a": value, "b": scale}, (name,), {})
    group = {n.name for n in layers}
    nodes: list[Node] = []
    for n in model.graph.nodes:
        if n.name == layers[0].name:
            nodes.append(mul)
        nodes.append(dataclasses.replace(n, inputs={**n.inputs, "x": name})
                     if n.name in group else n)
    tensors = {**model.tensors, scale: DenseTensor((1.0 / s).astype(np.float32))}
    graph = dataclasses.replace(model.graph, nodes=tuple(nodes))
    return model.replace(graph=graph, tensors=tensors), f"mul {name}"
