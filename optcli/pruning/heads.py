"""Attention-head removal: drop whole query heads (with grouped KV, whole kv groups) and the
matching rows of the q/k/v projections and input columns of the o projection.

Michel, Levy, Neubig, "Are Sixteen Heads Really Better than One?", NeurIPS 2019: many heads
can go with little loss. The paper ranks heads by a gradient-based importance on data; here,
like `unit_scores`, a head is ranked from weights alone: the L1/L2 norm of its Dv input
columns of the o projection (how much the head can move the output). With grouped KV
(num_kv_heads < num_heads) a kv head and its num_heads/num_kv_heads query heads go together
(their scores added), so the h // (H/KV) grouping of the kept heads stays valid.

The pattern handled (anything else raises `NotShrinkable`):

    q = linear_q(x), k = linear_k(x), v = linear_v(x)    outputs read only by the attention
    y = linear_o(attention(q, k, v))                      attention output read only by o

Each head's computation is independent of the others, head_dim is unchanged (so a default
scale 1/sqrt(head_dim) is too) and rotary positions act within a head, so the shrunk model
equals the dense model with the removed heads' o-projection input columns set to zero.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass

import numpy as np

from optcli.graph import Model, Node
from optcli.pruning.structured import (
    NotShrinkable,
    dense_array,
    dense_tensor,
    node_tensors,
    units_to_remove,
)


@dataclass
class Heads:
    """An attention node, its q/k/v/o linears and its head sizes: q[.., H*Dh], k[.., KV*Dh],
    v[.., KV*Dv], o input [.., H*Dv]."""

    attention: Node
    proj: dict[str, Node]           # "q", "k", "v", "o" -> linear node
    num_heads: int
    num_kv_heads: int
    dh: int
    dv: int

    def linears(self) -> list[str]:
        return [self.proj[r].name for r in "qkvo"]


def find_heads(model: Model, attn: Node) -> Heads:
    """The q/k/v/o linears around attention node `attn`, or NotShrinkable saying why not."""
    readers = Counter(v for n in model.graph.nodes for v in n.input_names())
    readers.update(vi.name for vi in model.graph.outputs)
    producers = {o: n for n in model.graph.nodes for o in n.outputs}
    proj = {}
    for role in "qkv":
        p = producers.get(attn.inputs[role])
        if p is None or p.op != "linear":
            raise NotShrinkable(f"{role} is not computed by a linear")
        if readers[attn.inputs[role]] != 1:
            raise NotShrinkable(f"{role} projection '{p.name}' has other readers")
        proj[role] = p
    out = attn.outputs[0]
    users = [n for n in model.graph.nodes if out in n.input_names()]
    if readers[out] != 1 or len(users) != 1 or users[0].op != "linear" \
            or users[0].inputs.get("x") != out:
        raise NotShrinkable("output does not go straight into one linear")
    proj["o"] = users[0]
    for n in proj.values():
        for t in node_tensors(n):
            if readers[t] > 1:
                raise NotShrinkable(f"tensor '{t}' is shared by several nodes")
    return _dims(model, attn, proj)


def _dims(model: Model, attn: Node, proj: dict[str, Node]) -> Heads:
    """Head sizes from the weight shapes (linear weight [out, in])."""
    rows = {r: model.tensors[proj[r].inputs["weight"]].shape[0] for r in "qkv"}
    o_in = model.tensors[proj["o"].inputs["weight"]].shape[1]
    h = attn.attrs["num_heads"]
    kv = attn.attrs.get("num_kv_heads") or h
    if h % kv or rows["q"] % h or rows["v"] % kv or rows["k"] != kv * (rows["q"] // h) \
            or o_in != h * (rows["v"] // kv):
        raise NotShrinkable("projection shapes do not split into heads")
    return Heads(attn, proj, h, kv, rows["q"] // h, rows["v"] // kv)


def group_scores(o_weight: np.ndarray, heads: Heads, norm: str) -> np.ndarray:
    """[KV] importance of each kv group: the L1/L2 norms of its query heads' o columns
    (o_weight [out, H*Dv], head h owns columns h*Dv .. h*Dv+Dv-1), summed over the group."""
    order = 1 if norm == "l1" else 2
    cols = o_weight.astype(np.float64).reshape(o_weight.shape[0], heads.num_heads, heads.dv)
    per_head = np.array([np.linalg.norm(cols[:, h].ravel(), ord=order)
                         for h in range(heads.num_heads)])
    return per_head.reshape(heads.num_kv_heads, -1).sum(axis=1)


def groups_to_remove(scores: np.ndarray, fraction: float) -> np.ndarray:
    """Sorted kv groups to drop: round(fraction * KV) lowest, at least one group kept."""
    return units_to_remove(scores, fraction, min_keep=1)


def _span(idx: np.ndarray, size: int) -> np.ndarray:
    """Indices of blocks idx of `size` consecutive entries: [i*size .. i*size+size-1 for i]."""
    return (np.asarray(idx)[:, None] * size + np.arange(size)).ravel().astype(np.int64)


@dataclass
class HeadCut:
    model: Model
    removed_heads: np.ndarray       # query heads removed, sorted
    params_before: int
    params_after: int
    notes: list[str]


def remove_heads(model: Model, heads: Heads, groups: np.ndarray) -> HeadCut:
    """A new model without kv groups `groups`: their query heads' q rows (and bias), their
    k/v rows (and bias), the query heads' o input columns; attention attrs updated."""
    rep = heads.num_heads // heads.num_kv_heads
    qheads = _span(groups, rep)
    cut = {"q": (_span(qheads, heads.dh), 0), "k": (_span(groups, heads.dh), 0),
           "v": (_span(groups, heads.dv), 0), "o": (_span(qheads, heads.dv), 1)}
    tensors, notes = dict(model.tensors), []
    touched = [t for r in "qkvo" for t in node_tensors(heads.proj[r])]
    for r, (idx, axis) in cut.items():
        node = heads.proj[r]
        for role in ("weight", "bias") if axis == 0 else ("weight",):
            t = node.inputs.get(role)
            if t:                       # weight [out, in]: rows (axis 0) or columns (axis 1)
                kept = np.delete(dense_array(tensors[t], t, notes), idx, axis=axis)
                tensors[t] = dense_tensor(kept)
    attn = heads.attention
    attrs = {**attn.attrs, "num_heads": heads.num_heads - qheads.size}
    if attn.attrs.get("num_kv_heads") is not None:
        attrs["num_kv_heads"] = heads.num_kv_heads - groups.size
    new = dataclasses.replace(attn, attrs=attrs)
    graph = dataclasses.replace(model.graph, nodes=tuple(
        new if n.name == attn.name else n for n in model.graph.nodes))
    return HeadCut(model.replace(graph=graph, tensors=tensors), qheads,
                   sum(model.tensors[t].size for t in touched),
                   sum(tensors[t].size for t in touched), notes)
