"""The tensor-parallel graph rewrite (Megatron-LM, Shoeybi et al. 2019): large linear layers
split across k workers, each pattern with the gather or sum it needs.

- MLP pair  A -> act -> B: A split by output columns (rows of its [out, in] weight), the
  activation applied per shard, B split by input rows (columns of its weight); the partial
  products are summed and B's bias added once: y = Σ_j act(x A_jᵀ + a_j) B_jᵀ + b.
- attention  q, k, v -> attention -> o: q/k/v split by heads (H/k heads per shard), each
  shard attends on its heads, o split by input rows, partial outputs summed, bias once.
- any other listed linear: split by output columns, shards concatenated on the last axis.
No weight is changed, only sliced (decoded to float32): the rewritten model lives in memory
for the run, it is never written. Sums reorder float additions, so outputs equal the serial
run's to float tolerance.

`shard_graph` returns the new model and its regions in order: ("serial", nodes) or
("parallel", [nodes of shard 0, …, nodes of shard k-1]); the join nodes open the next
serial region.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict

import numpy as np

from optcli.formats import DenseTensor
from optcli.graph import Model, Node

ACTIVATIONS = ("relu", "gelu", "silu", "tanh", "sigmoid")
Region = tuple[str, list]


def _readers(model: Model) -> dict[str, list[Node]]:
    out: dict[str, list[Node]] = defaultdict(list)
    for n in model.graph.nodes:
        for v in n.input_names():
            out[v].append(n)
    return out


def _only_reader(readers, value: str) -> Node | None:
    r = readers.get(value, [])
    return r[0] if len(r) == 1 else None


class Rewriter:
    def __init__(self, model: Model, shards: tuple[str, ...], k: int):
        self.model, self.k, self.shards = model, k, set(shards)
        self.readers = _readers(model)
        self.tensors = {n: t for n, t in model.tensors.items()}
        self.regions: list[Region] = []
        self.serial: list[Node] = []

    def _slice(self, name: str, axis: int, j: int, parts: int | None = None) -> str:
        """Tensor `name` cut in k (or `parts`) equal-ish pieces along axis; piece j."""
        w = self.model.tensors[name].resident().decode()
        bounds = np.linspace(0, w.shape[axis], (parts or self.k) + 1).astype(int)
        piece = np.take(w, np.arange(bounds[j], bounds[j + 1]), axis=axis)
        new = f"{name}.shard{j}"
        self.tensors[new] = DenseTensor(np.ascontiguousarray(piece, np.float32))
        return new

    def _flush(self) -> None:
        if self.serial:
            self.regions.append(("serial", self.serial))
            self.serial = []

    def _parallel(self, branches: list[list[Node]], joins: list[Node]) -> None:
        self._flush()
        self.regions.append(("parallel", branches))
        self.serial.extend(joins)

    def _sum(self, base: Node, parts: list[str]) -> list[Node]:
        """add nodes summing the shards' partial outputs, then the bias: base's output name."""
        joins, acc = [], parts[0]
        bias = base.inputs.get("bias")
        for j, p in enumerate(parts[1:], 1):
            last = j == len(parts) - 1 and bias is None
            out = base.outputs[0] if last else f"{base.name}.sum{j}"
            joins.append(Node(f"{base.name}.sum{j}", "add", {"a": acc, "b": p}, (out,)))
            acc = out
        if bias is not None:
            joins.append(Node(f"{base.name}.bias", "add", {"a": acc, "b": bias},
                              (base.outputs[0],)))
        return joins

    def _linear(self, n: Node, j: int, axis: int, with_bias: bool) -> Node:
        """Shard j of linear n: weight rows (axis 0, output columns) or columns (axis 1)."""
        ins = {"x": n.inputs["x"], "weight": self._slice(n.inputs["weight"], axis, j)}
        if with_bias and n.inputs.get("bias") is not None:
            ins["bias"] = self._slice(n.inputs["bias"], 0, j)
        return Node(f"{n.name}.shard{j}", "linear", ins, (f"{n.outputs[0]}.shard{j}",),
                    dict(n.attrs))

    def mlp(self, a: Node, act: Node, b: Node) -> None:
        branches, parts = [], []
        for j in range(self.k):
            aj = self._linear(a, j, 0, True)
            uj = Node(f"{act.name}.shard{j}", act.op, {"x": aj.outputs[0]},
                      (f"{act.outputs[0]}.shard{j}",), dict(act.attrs))
            bj = self._linear(b, j, 1, False)
            bj = dataclasses.replace(bj, inputs={**bj.inputs, "x": uj.outputs[0]})
            branches.append([aj, uj, bj])
            parts.append(bj.outputs[0])
        self._parallel(branches, self._sum(b, parts))

    def attention(self, qkv: list[Node], att: Node, o: Node) -> None:
        heads = att.attrs["num_heads"]
        branches, parts = [], []
        for j in range(self.k):
            lin = [self._linear(p, j, 0, True) for p in qkv]
            attrs = {**att.attrs, "num_heads": heads // self.k}
            if att.attrs.get("num_kv_heads") is not None:
                attrs["num_kv_heads"] = heads // self.k
            ins = {**att.inputs, **{r: x.outputs[0] for r, x in zip("qkv", lin)}}
            aj = Node(f"{att.name}.shard{j}", "attention", ins,
                      (f"{att.outputs[0]}.shard{j}",), attrs)
            oj = self._linear(o, j, 1, False)
            oj = dataclasses.replace(oj, inputs={**oj.inputs, "x": aj.outputs[0]})
            branches.append([*lin, aj, oj])
            parts.append(oj.outputs[0])
        self._parallel(branches, self._sum(o, parts))

    def column(self, n: Node) -> None:
        branches = [[self._linear(n, j, 0, True)] for j in range(self.k)]
        join = Node(f"{n.name}.gather", "concat", {"xs": [b[0].outputs[0] for b in branches]},
                    n.outputs, {"axis": -1})
        self._parallel(branches, [join])


def _mlp_pattern(rw: Rewriter, n: Node) -> tuple[Node, Node] | None:
    act = _only_reader(rw.readers, n.outputs[0])
    if act is None or act.op not in ACTIVATIONS:
        return None
    b = _only_reader(rw.readers, act.outputs[0])
    ok = (b is not None and b.op == "linear" and b.inputs["x"] == act.outputs[0]
          and b.inputs["weight"] in rw.model.tensors)
    return (act, b) if ok else None


def _attention_pattern(rw: Rewriter, att: Node) -> tuple[list[Node], Node, Node] | None:
    """q, k, v (all listed, read by att only) -> att -> o, with heads divisible by k."""
    g = rw.model.graph
    qkv = [next((m for m in g.nodes if m.outputs[0] == att.inputs[r]), None) for r in "qkv"]
    heads, kv = att.attrs["num_heads"], att.attrs.get("num_kv_heads")
    if (any(m is None or m.op != "linear" or m.name not in rw.shards
            or _only_reader(rw.readers, m.outputs[0]) is not att for m in qkv)
            or len({m.name for m in qkv}) < 3 or heads % rw.k
            or (kv is not None and kv != heads)):
        return None
    o = _only_reader(rw.readers, att.outputs[0])
    ok = o is not None and o.op == "linear" and o.inputs["weight"] in rw.model.tensors
    return (qkv, att, o) if ok else None


def patterns(rw: Rewriter) -> tuple[dict[str, tuple], set[str]]:
    """{name of a pattern's last node: (kind, parts)} and every node a pattern claims. A
    pattern is rewritten where its last node was: everything it reads comes before that,
    and nothing outside it reads its inner values."""
    found: dict[str, tuple] = {}
    claimed: set[str] = set()
    for n in rw.model.graph.nodes:
        if n.op == "attention":
            hit = _attention_pattern(rw, n)
            if hit is not None:
                found[hit[2].name] = ("attention", hit)
                claimed |= {m.name for m in (*hit[0], hit[1], hit[2])}
    for n in rw.model.graph.nodes:
        if n.op == "linear" and n.name in rw.shards and n.name not in claimed:
            hit = _mlp_pattern(rw, n)
            if hit is not None and not {hit[0].name, hit[1].name} & claimed:
                found[hit[1].name] = ("mlp", (n, *hit))
                claimed |= {n.name, hit[0].name, hit[1].name}
            else:
                found[n.name] = ("column", (n,))
                claimed.add(n.name)
    return found, claimed


def shard_graph(model: Model, shards: tuple[str, ...], k: int) -> tuple[Model, list[Region]]:
    rw = Rewriter(model, shards, k)
    found, claimed = patterns(rw)
    for n in model.graph.nodes:
        if n.name in found:
            kind, parts = found[n.name]
            getattr(rw, kind)(*parts)
        elif n.name not in claimed:
            rw.serial.append(n)
    rw._flush()
    new_nodes = tuple(m for _, r in rw.regions for m in _flat(r))
    used = {v for m in new_nodes for v in m.input_names()}
    tensors = {k2: t for k2, t in rw.tensors.items() if k2 in used}
    graph = dataclasses.replace(model.graph, nodes=new_nodes)
    return model.replace(graph=graph, tensors=tensors, extra={}), rw.regions


def _flat(region: list) -> list[Node]:
    return [m for x in region for m in (x if isinstance(x, list) else [x])]
