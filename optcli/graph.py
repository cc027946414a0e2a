"""The model: a DAG of op nodes over named values, plus the stored weight tensors.

A value name is either a graph input, a stored tensor (weight) or the output of exactly one
node. Nodes are kept in a topological order; `validate` proves that order, the op table's
roles and attributes, and that every weight a node reads exists. Models are treated as
immutable: steps build a new one with `dataclasses.replace`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Iterator

from optcli.errors import GraphError
from optcli.formats import StoredTensor
from optcli.kernels.w8a8 import check_w8a8
from optcli.ops import OPS, REQUIRED

TASKS = ("classification", "embedding", "language_model", "regression")
DTYPES = ("float32", "float16", "int64", "int32")


@dataclass(frozen=True)
class ValueInfo:
    """A graph input or output: shape entries are ints or symbols ('batch', 'seq')."""

    name: str
    shape: tuple[int | str, ...]
    dtype: str = "float32"
    meaning: str = ""          # e.g. 'image_nchw', 'token_ids', 'logits', 'embedding'


@dataclass(frozen=True)
class Node:
    name: str
    op: str
    inputs: dict[str, Any]     # role -> value name (list of names for a variadic role)
    outputs: tuple[str, ...]
    attrs: dict[str, Any] = field(default_factory=dict)

    def input_names(self) -> Iterator[str]:
        for v in self.inputs.values():
            yield from (v if isinstance(v, list) else [v])


@dataclass(frozen=True)
class Graph:
    nodes: tuple[Node, ...]
    inputs: tuple[ValueInfo, ...]
    outputs: tuple[ValueInfo, ...]

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)


@dataclass(frozen=True)
class Model:
    name: str
    graph: Graph
    tensors: dict[str, StoredTensor]
    task: dict[str, Any] = field(default_factory=dict)        # kind, labels, preprocessing
    provenance: dict[str, Any] = field(default_factory=dict)  # source, steps, hashes
    extra: dict[str, Any] = field(default_factory=dict)       # e.g. tokenizer, vocab

    def replace(self, **changes: Any) -> "Model":
        return dataclasses.replace(self, **changes)

    def weight_nodes(self) -> list[tuple[Node, str, str]]:
        """(node, role, tensor name) for every stored tensor a node reads through a weight role."""
        out = []
        for n in self.graph.nodes:
            for role in OPS[n.op].weights:
                t = n.inputs.get(role)
                if isinstance(t, str) and t in self.tensors:
                    out.append((n, role, t))
        return out


def validate(model: Model) -> None:
    """Raise GraphError naming the node/tensor unless the graph is executable as stored."""
    g = model.graph
    if model.task.get("kind") not in TASKS:
        raise GraphError(f"task.kind must be one of {TASKS}, got {model.task.get('kind')!r}")
    if not g.outputs:
        raise GraphError("graph has no outputs")
    known = set(model.tensors)
    for vi in g.inputs:
        _check_value_info(vi, "input")
        if vi.name in known:
            raise GraphError(f"graph input '{vi.name}' clashes with a tensor name")
        known.add(vi.name)
    names = set()
    for node in g.nodes:
        if node.name in names:
            raise GraphError(f"duplicate node name '{node.name}'")
        names.add(node.name)
        _check_node(node, known)
        for out in node.outputs:
            if out in known:
                raise GraphError(f"node '{node.name}': output '{out}' is produced twice")
            known.add(out)
    for vi in g.outputs:
        _check_value_info(vi, "output")
        if vi.name not in known:
            raise GraphError(f"graph output '{vi.name}' is not produced by any node")
    check_w8a8(model)          # W8A8 layers: int8 weight and a static scale (kernels/w8a8.py)


def _check_value_info(vi: ValueInfo, kind: str) -> None:
    if vi.dtype not in DTYPES:
        raise GraphError(f"graph {kind} '{vi.name}': dtype {vi.dtype!r} not in {DTYPES}")
    for d in vi.shape:
        if not (isinstance(d, str) or (isinstance(d, int) and d > 0)):
            raise GraphError(f"graph {kind} '{vi.name}': bad dimension {d!r}")


def _check_node(node: Node, known: set[str]) -> None:
    spec = OPS.get(node.op)
    where = f"node '{node.name}' ({node.op})"
    if spec is None:
        raise GraphError(f"{where}: unknown op; valid ops: {', '.join(sorted(OPS))}")
    unknown = set(node.inputs) - set(spec.roles)
    if unknown:
        raise GraphError(f"{where}: unknown input role(s) {sorted(unknown)}; "
                         f"valid: {list(spec.roles)}")
    for role in spec.inputs:
        if role not in node.inputs:
            raise GraphError(f"{where}: missing input '{role}'")
    for role, v in node.inputs.items():
        if (role == spec.variadic) != isinstance(v, list) or (isinstance(v, list) and not v):
            raise GraphError(f"{where}: input '{role}' must be "
                             + ("a non-empty list of names" if role == spec.variadic else "a name"))
    for name in node.input_names():
        if name not in known:
            raise GraphError(f"{where}: input '{name}' is not a graph input, a tensor, or the "
                             "output of an earlier node (graph not topologically ordered?)")
    if len(node.outputs) != 1:
        raise GraphError(f"{where}: must have exactly one output")
    _check_attrs(node, where)


def _check_attrs(node: Node, where: str) -> None:
    spec = OPS[node.op]
    for key, value in node.attrs.items():
        attr = spec.attrs.get(key)
        if attr is None:
            raise GraphError(f"{where}: unknown attribute '{key}'; valid: {sorted(spec.attrs)}")
        ok_type = value is None or (isinstance(value, attr.types) and not
                                    (isinstance(value, bool) and bool not in attr.types))
        if not ok_type or (attr.check is not None and not attr.check(value)):
            raise GraphError(f"{where}: invalid value {value!r} for attribute '{key}'"
                             + (f" ({attr.doc})" if attr.doc else ""))
    for key, attr in spec.attrs.items():
        if attr.default is REQUIRED and key not in node.attrs:
            raise GraphError(f"{where}: missing required attribute '{key}'")
