"""The graph rewrite of a factorized linear layer: one node becomes two matmuls.

    before:  y = linear(x, W[out, in], bias)                       node `<name>`
    after:   z = linear(x, B[r, in])                               node `<name>.lr_in`
             y = linear(z, A[out, r], bias)                        node `<name>`

The second node keeps the layer's name, its output value and its bias, so selectors of later
steps, report rows and every consumer still match; the first is new. The weight tensor W is
replaced by `<W>.lr_in` (B) and `<W>.lr_out` (A); names that already exist get a trailing '_'.
Nothing new is needed in the file format: both nodes are plain `linear`s with dense weights.
"""

from __future__ import annotations

import dataclasses
from collections import Counter

import numpy as np

from optcli.formats import DenseTensor
from optcli.graph import Model, Node


def weight_is_shared(model: Model, node: Node) -> bool:
    """True when another node (or another role) reads `node`'s weight tensor too (tied
    embeddings): factorizing it would change the other reader."""
    uses = Counter(v for n in model.graph.nodes for v in n.input_names())
    return uses[node.inputs["weight"]] > 1


def factorize_linear(model: Model, name: str, a: np.ndarray, b: np.ndarray) -> Model:
    """A new model where linear node `name` runs as x @ b.T (b[r, in]) then @ a.T (a[out, r])
    plus its bias. The old weight tensor is dropped (the caller checks it is not shared)."""
    node = model.graph.node(name)
    w_name = node.inputs["weight"]
    taken = _names(model)
    b_name = _free(f"{w_name}.lr_in", taken)
    a_name = _free(f"{w_name}.lr_out", taken)
    first = _free(f"{name}.lr_in", taken)                  # node name and its output value
    tensors = {k: v for k, v in model.tensors.items() if k != w_name}
    tensors[b_name] = DenseTensor(np.ascontiguousarray(b, np.float32))
    tensors[a_name] = DenseTensor(np.ascontiguousarray(a, np.float32))
    pre = Node(first, "linear", {"x": node.inputs["x"], "weight": b_name}, (first,), {})
    post = Node(name, "linear", {**node.inputs, "x": first, "weight": a_name}, node.outputs,
                dict(node.attrs))
    nodes: list[Node] = []
    for n in model.graph.nodes:
        nodes.extend((pre, post) if n.name == name else (n,))
    graph = dataclasses.replace(model.graph, nodes=tuple(nodes))
    return model.replace(graph=graph, tensors=tensors)


def _names(model: Model) -> set[str]:
    """Every name in use: tensors, graph inputs/outputs, node names and node outputs."""
    g = model.graph
    return (set(model.tensors) | {v.name for v in g.inputs + g.outputs}
            | {n.name for n in g.nodes} | {o for n in g.nodes for o in n.outputs})


def _free(name: str, taken: set[str]) -> str:
    """`name`, with '_' appended until unused; reserved in `taken`."""
    while name in taken:
        name += "_"
    taken.add(name)
    return name
