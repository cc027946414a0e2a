"""Multi-node ONNX patterns that import as one optcli op, found before the node-by-node walk.

- MatMul(x, B) -> Add(·, c), with B[in, out] and c[out] constants and the MatMul read only by
  the Add: one `linear` (weight B.T, bias c). This is how optcli and many exporters write a
  biased linear layer.
- the erf GELU, x * 0.5 * (1 + erf(x / sqrt 2)) in either association:
      Div(x, √2) | Mul(x, 1/√2) -> Erf -> Add(·, 1) -> Mul(x, ·) -> Mul(·, 0.5)      (torch)
      Div(x, √2) -> Erf -> Add(1, ·) ;  Mul(x, 0.5) ;  Mul(·, ·)                    (optcli)
  one `gelu` (approximate='none').

`fuse_patterns` returns which node indices to skip and, for the last node of each match, a
function that emits the fused op.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from optcli.interop.onnx_import_ops import _linear

if TYPE_CHECKING:
    from optcli.interop.onnx_import import OnnxImporter


@dataclass
class Plan:
    skip: set[int] = field(default_factory=set)
    fused: dict[int, Callable[[Any, str], None]] = field(default_factory=dict)


def fuse_patterns(imp: OnnxImporter, nodes: list[Any]) -> Plan:
    from optcli.interop.onnx_import import _constant_value

    for n in nodes:     # constants have no inputs: known before the walk
        if n.op_type == "Constant":
            imp.consts[n.output[0]] = _constant_value(imp.onnx, n)
    producer = {o: i for i, n in enumerate(nodes) for o in n.output}
    outputs = {o.name for o in imp.proto.graph.output}
    plan = Plan()

    def only_reader(value: str, op_type: str) -> int | None:
        readers = imp.consumers.get(value, [])
        if len(readers) == 1 and value not in outputs and nodes[readers[0]].op_type == op_type:
            return readers[0]
        return None

    for i, n in enumerate(nodes):
        if n.op_type == "MatMul":
            _matmul_add(imp, nodes, i, only_reader, plan)
        elif n.op_type == "Erf":
            _gelu(imp, nodes, i, producer, only_reader, plan)
    return plan


def _scalar(imp: OnnxImporter, name: str, value: float) -> bool:
    c = imp.const(name)
    return c is not None and c.size == 1 and math.isclose(float(c.reshape(-1)[0]), value,
                                                          rel_tol=1e-5)


def _other(node: Any, value: str) -> str | None:
    """The input of a binary node that is not `value` (None if it reads `value` twice)."""
    a, b = node.input
    return b if a == value else a if b == value else None


def _matmul_add(imp: OnnxImporter, nodes: list[Any], i: int, only_reader: Callable,
                plan: Plan) -> None:
    mm = nodes[i]
    w = imp.const(mm.input[1])
    j = only_reader(mm.output[0], "Add")
    if w is None or w.ndim != 2 or j is None:
        return
    add = nodes[j]
    b_name = _other(add, mm.output[0])
    bias = imp.const(b_name) if b_name else None
    if bias is None or bias.size != w.shape[1] or bias.shape[-1:] != (w.shape[1],):
        return
    plan.skip.add(i)
    plan.fused[j] = lambda imp, name: _linear(imp, add.output[0], name, mm.input[0], w,
                                              mm.input[1], True, bias, b_name)


def _gelu(imp: OnnxImporter, nodes: list[Any], e: int, producer: dict[str, int],
          only_reader: Callable, plan: Plan) -> None:
    d = producer.get(nodes[e].input[0])
    if d is None or nodes[d].op_type not in ("Div", "Mul"):
        return
    div = nodes[d]
    x = div.input[0]
    scale = math.sqrt(2.0) if div.op_type == "Div" else 1.0 / math.sqrt(2.0)
    a = only_reader(nodes[e].output[0], "Add")
    if not _scalar(imp, div.input[1], scale) or a is None:
        return
    if not _scalar(imp, _other(nodes[a], nodes[e].output[0]) or "", 1.0):
        return
    m1 = only_reader(nodes[a].output[0], "Mul")
    if m1 is None:
        return
    half = _other(nodes[m1], nodes[a].output[0])
    if half == x:                                   # (x * phi2) * 0.5
        m2 = only_reader(nodes[m1].output[0], "Mul")
        if m2 is None or not _scalar(imp, _other(nodes[m2], nodes[m1].output[0]) or "", 0.5):
            return
        skip, last = {d, e, a, m1}, m2
    else:                                           # (x * 0.5) * phi2
        h = producer.get(half or "")
        if h is None or nodes[h].op_type != "Mul" or only_reader(half, "Mul") != m1:
            return
        if x not in nodes[h].input or not _scalar(imp, _other(nodes[h], x) or "", 0.5):
            return
        skip, last = {d, e, a, h}, m1
    if imp.consumers.get(div.output[0]) != [e]:
        return                                      # x / sqrt2 is read elsewhere too
    plan.skip |= skip
    out = nodes[last].output[0]
    plan.fused[last] = lambda imp, name: imp.emit("gelu", out, name, {"approximate": "none"},
                                                  x=imp.value(x))

