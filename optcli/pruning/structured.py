"""Structured pruning: remove whole output units (linear rows, conv filters, FFN channels) and
the matching input columns/channels of every consumer, so the model really gets smaller.

Li, Kadav, Durdanovic, Samet, Graf, "Pruning Filters for Efficient ConvNets", ICLR 2017:
rank filters by the L1 norm of their weights, drop the lowest. The same ranking applies to
linear rows and to gated FFN channels (the norms of gate and up rows are added).

Three parts, used by `optcli/steps/shrink.py`:
- `unit_scores`, `units_to_remove`: pure array functions.
- `find_group` / `trace`: which nodes the units flow through. A unit may pass through ops that
  act per channel (activations, batchnorm, pools, flatten after a conv, a `mul` gate) and must
  end in the input of a linear/conv; anything else (residual add, attention, norms over the
  feature axis, a graph output) makes the layer unshrinkable (`NotShrinkable`).
- `removed_values`: what each removed unit holds in the *zeroed* dense model (0 after relu,
  0.5 after sigmoid, an affine value after batchnorm). A consumer adds W[:, removed] @ value to
  its bias, so the shrunk model equals the dense model with those rows and biases zeroed.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from optcli.formats import DenseTensor, StoredTensor
from optcli.graph import Model, Node
from optcli.kernels import kernel_table
from optcli.ops import OPS

ACTIVATIONS = ("relu", "gelu", "silu", "tanh", "sigmoid")   # elementwise, shape-preserving
CONSUMERS = ("linear", "conv2d")                             # where the units end


class NotShrinkable(Exception):
    """Why a layer cannot lose units; `partner` names a gate/up twin met at a `mul`."""

    def __init__(self, reason: str, partner: str | None = None):
        super().__init__(reason)
        self.partner = partner


def unit_scores(weights: list[np.ndarray], norm: str) -> np.ndarray:
    """Per-unit importance [out]: the L1 or L2 norm of each row of weight [out, ...], summed
    over the group's members (gate + up of a gated FFN). Biases are not included."""
    order = 1 if norm == "l1" else 2
    rows = [np.linalg.norm(w.reshape(w.shape[0], -1).astype(np.float64), ord=order, axis=1)
            for w in weights]
    return np.sum(rows, axis=0)


def units_to_remove(scores: np.ndarray, sparsity: float, min_keep: int) -> np.ndarray:
    """Sorted indices of the round(sparsity * n) lowest-scoring units, never leaving fewer
    than min_keep (ties broken by position: a stable sort)."""
    n = scores.size
    k = max(min(int(round(sparsity * n)), n - min_keep), 0)
    return np.sort(np.argsort(scores, kind="stable")[:k])


@dataclass
class Plan:
    """The nodes a group's units pass through, in topological order, and how each value holds
    them: 'chan' (axis 1 of [B, C, H, W]), 'feat' (last axis), 'flat' (C blocks of H*W)."""

    members: tuple[str, ...]
    path: list[Node] = field(default_factory=list)
    kinds: dict[str, str] = field(default_factory=dict)

    def consumers(self) -> list[Node]:
        return [n for n in self.path if n.op in CONSUMERS]


def find_group(model: Model, name: str, selected: set[str]) -> Plan:
    """The plan for removing units of layer `name`, joining a gate/up partner when the units
    meet it at a `mul` (LLaMA-style FFN). Raises NotShrinkable."""
    members = [name]
    while True:
        try:
            return trace(model, tuple(members))
        except NotShrinkable as e:
            if e.partner is None or e.partner in members:
                raise
            if e.partner not in selected:
                raise NotShrinkable(f"gated with '{e.partner}', which is not selected") from None
            members.append(e.partner)


def trace(model: Model, members: tuple[str, ...]) -> Plan:
    """Follow the members' outputs forward through the graph (see the module docstring)."""
    plan = Plan(members)
    for n in model.graph.nodes:
        if n.name in members:
            if n.op == "conv2d" and n.attrs.get("groups", 1) != 1:
                raise NotShrinkable("grouped convolution")
            plan.kinds[n.outputs[0]] = "chan" if n.op == "conv2d" else "feat"
            continue
        hit = [r for r, v in n.inputs.items() if isinstance(v, str) and v in plan.kinds]
        if any(isinstance(v, list) and set(v) & set(plan.kinds) for v in n.inputs.values()):
            raise NotShrinkable(f"output reaches {n.op} '{n.name}'")
        if hit:
            kind = _next_kind(model, n, hit, plan.kinds)
            plan.path.append(n)
            if kind is not None:
                plan.kinds[n.outputs[0]] = kind
    outputs = {vi.name for vi in model.graph.outputs}
    if outputs & set(plan.kinds):
        raise NotShrinkable("output is a graph output")
    return plan


def _next_kind(model: Model, n: Node, hit: list[str], kinds: dict[str, str]) -> str | None:
    """How node n's output holds the units (None: n consumes them), or NotShrinkable."""
    where = f"output reaches {n.op} '{n.name}'"
    kind = kinds[n.inputs[hit[0]]]
    if n.op == "mul":
        if len(hit) == 2 and kinds[n.inputs["a"]] == kinds[n.inputs["b"]]:
            return kind
        other = n.inputs["b" if hit == ["a"] else "a"]
        raise NotShrinkable(where, partner=_producer(model, other))
    if hit != ["x"]:
        raise NotShrinkable(where)
    if n.op == "linear" and kind in ("feat", "flat"):
        return None
    if n.op == "conv2d" and kind == "chan" and n.attrs.get("groups", 1) == 1:
        return None
    if n.op in ACTIVATIONS:
        return kind
    if kind == "chan" and n.op in ("batchnorm", "maxpool2d", "avgpool2d"):
        return "chan"
    if kind == "chan" and n.op == "global_avgpool":
        return "feat"
    if kind == "chan" and n.op == "flatten" and n.attrs.get("axis", 1) == 1:
        return "flat"
    raise NotShrinkable(where)


def _producer(model: Model, value: str) -> str | None:
    """The linear/conv that computes `value`, looking back through activations."""
    for n in reversed(model.graph.nodes):
        if value in n.outputs:
            if n.op in CONSUMERS:
                return n.name
            return _producer(model, n.inputs["x"]) if n.op in ACTIVATIONS else None
    return None


def removed_values(model: Model, plan: Plan, removed: np.ndarray) -> dict[str, np.ndarray]:
    """value name -> [len(removed)] what the removed units hold there in the zeroed model."""
    ref = kernel_table("reference")
    vals = {model.graph.node(m).outputs[0]: np.zeros(removed.size, np.float32)
            for m in plan.members}
    for n in plan.path:
        out = n.outputs[0]
        if n.op in CONSUMERS:
            continue
        if n.op == "mul":
            vals[out] = vals[n.inputs["a"]] * vals[n.inputs["b"]]
            continue
        x = vals[n.inputs["x"]]
        attrs = OPS[n.op].resolve_attrs(n.attrs)
        if n.op in ACTIVATIONS:
            vals[out] = ref[n.op](x=x, **attrs)
        elif n.op == "batchnorm":
            p = {r: model.tensors[n.inputs[r]].decode()[removed]
                 for r in ("weight", "bias", "mean", "var")}
            vals[out] = ((x - p["mean"]) / np.sqrt(p["var"] + attrs["eps"]) * p["weight"]
                         + p["bias"]).astype(np.float32)
        else:
            if (n.op == "avgpool2d" and attrs["count_include_pad"] and _pads(attrs["padding"])
                    and np.any(x)):
                raise NotShrinkable(f"removed units are nonzero at padded {n.op} '{n.name}'")
            vals[out] = x                   # pools and flatten keep a constant channel
    return vals


def _pads(padding: int | list) -> bool:
    return any(np.atleast_1d(padding))


@dataclass
class Cut:
    """A shrunk model and what it cost: touched tensors' params before/after, notes."""

    model: Model
    params_before: int
    params_after: int
    notes: list[str]


def shrink(model: Model, plan: Plan, removed: np.ndarray, units: int) -> Cut:
    """A new model without the `removed` units (of `units`) of the plan's members: their rows
    and bias entries, batchnorm entries on the way, and the consumers' input columns."""
    values = removed_values(model, plan, removed)
    _check_not_shared(model, plan)
    tensors, notes, nodes = dict(model.tensors), [], {}
    touched = [t for n in plan.path + [model.graph.node(m) for m in plan.members]
               if n.op in CONSUMERS + ("batchnorm",) for t in node_tensors(n)]
    for n in [model.graph.node(m) for m in plan.members] + plan.path:
        if n.name in plan.members or n.op == "batchnorm":
            for t in node_tensors(n):           # rows of weight [out, ...], entries of bias [out]
                kept = np.delete(dense_array(tensors[t], t, notes), removed, axis=0)
                tensors[t] = dense_tensor(kept)
        elif n.op in CONSUMERS:
            nodes[n.name] = _cut_inputs(n, plan.kinds[n.inputs["x"]], removed, units,
                                        values[n.inputs["x"]], tensors, notes)
    graph = dataclasses.replace(model.graph, nodes=tuple(nodes.get(n.name, n)
                                                         for n in model.graph.nodes))
    new_bias = [n.inputs["bias"] for n in nodes.values()
                if n.inputs.get("bias") and n.inputs["bias"] not in touched]
    return Cut(model.replace(graph=graph, tensors=tensors),
               sum(model.tensors[t].size for t in touched),
               sum(tensors[t].size for t in touched + new_bias), notes)


def _cut_inputs(n: Node, kind: str, removed: np.ndarray, units: int, value: np.ndarray,
                tensors: dict[str, StoredTensor], notes: list[str]) -> Node:
    """Drop a consumer's input columns (linear [out, in]) or channels (conv [O, C, kh, kw]);
    the removed units' constant `value` is folded into its bias: b += W[:, cols] @ value."""
    w = dense_array(tensors[n.inputs["weight"]], n.inputs["weight"], notes)
    cols, value = removed, value
    if kind == "flat":                      # channel c of [C, H, W] is columns c*HW .. c*HW+HW-1
        block = w.shape[1] // units
        cols = (removed[:, None] * block + np.arange(block)).ravel()
        value = np.repeat(value, block)
    tensors[n.inputs["weight"]] = dense_tensor(np.delete(w, cols, axis=1))
    if not np.any(value):
        return n
    if n.op == "conv2d" and _pads(n.attrs.get("padding", 0)):
        raise NotShrinkable(f"removed units are nonzero at padded conv2d '{n.name}'")
    # a constant channel convolves (no padding) to value * sum of its kernel window
    delta = w[:, cols].reshape(w.shape[0], cols.size, -1).sum(-1).astype(np.float64) @ value
    bias = n.inputs.get("bias") or _free_name(tensors, f"{n.name}.bias")
    old = (dense_array(tensors[bias], bias, notes) if bias in tensors
           else np.zeros(w.shape[0], np.float32))
    tensors[bias] = dense_tensor((old + delta).astype(old.dtype))
    return Node(n.name, n.op, {**n.inputs, "bias": bias}, n.outputs, n.attrs)


def node_tensors(n: Node) -> list[str]:
    return [n.inputs[r] for r in OPS[n.op].weights if r in n.inputs]


def _check_not_shared(model: Model, plan: Plan) -> None:
    uses = Counter(v for n in model.graph.nodes for v in n.input_names())
    for n in plan.path + [model.graph.node(m) for m in plan.members]:
        for t in node_tensors(n):
            if uses[t] > 1:
                raise NotShrinkable(f"tensor '{t}' is shared by several nodes")


def dense_array(t: StoredTensor, name: str, notes: list[str]) -> np.ndarray:
    """A float array of the tensor: dense data as stored, other encodings decoded (noted)."""
    if isinstance(t, DenseTensor) and t.data.dtype.kind == "f":
        return t.data
    notes.append(f"{name}: {t.describe()} decoded and stored dense f32")
    return t.decode()


def dense_tensor(a: np.ndarray) -> DenseTensor:
    return DenseTensor(np.ascontiguousarray(a))


def _free_name(tensors: dict[str, StoredTensor], name: str) -> str:
    while name in tensors:
        name += "_"
    return name
