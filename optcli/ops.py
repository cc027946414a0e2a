"""The op table: every op the graph may use, its input roles and its attributes.

This table is the single source for graph validation (`graph.validate`), for the kernels'
calling convention (`kernel(**inputs, **attrs)`) and for the format docs. Shapes below use
B = batch, T = sequence, C = channels, D = features.

Calling convention: a node's `inputs` maps role -> value name (or, for the one variadic role
of `concat`, a list of names); the runtime calls `kernel(**{role: array}, **attrs)` with every
attribute resolved to its default, and the kernel returns one array.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable


@dataclass(frozen=True)
class Attr:
    """One attribute: its JSON type(s), its default (`REQUIRED` when it has none) and a check."""

    types: tuple[type, ...]
    default: Any = None
    check: Callable[[Any], bool] | None = None
    doc: str = ""
    optional: bool = False     # left out of resolve_attrs when unset or at its default, so
                               # kernels that ignore it (float linear/conv2d) never see it


REQUIRED = object()


def _pos_int(v: Any) -> bool:
    return isinstance(v, int) and v > 0


def _pair(v: Any, minimum: int = 1) -> bool:
    """An int or a list of two ints, each >= minimum (stride, padding, kernel sizes)."""
    vals = v if isinstance(v, list) else [v]
    return len(vals) in (1, 2) and all(isinstance(x, int) and x >= minimum for x in vals)


def _nonneg_pair(v: Any) -> bool:
    return _pair(v, minimum=0)


def _int_list(v: Any) -> bool:
    return isinstance(v, list) and all(isinstance(x, int) for x in v)


def _positive_float(v: Any) -> bool:
    return isinstance(v, (int, float)) and v > 0


INT = (int,)
NUM = (int, float)
LIST = (list,)
INT_OR_LIST = (int, list)
BOOL = (bool,)
STR = (str,)


@dataclass(frozen=True)
class OpSpec:
    name: str
    inputs: tuple[str, ...]                  # required roles, in call order
    optional: tuple[str, ...] = ()           # optional roles
    weights: tuple[str, ...] = ()            # roles normally bound to stored tensors
    variadic: str | None = None              # the role that takes a list of values
    attrs: dict[str, Attr] = field(default_factory=dict)
    doc: str = ""

    @property
    def roles(self) -> tuple[str, ...]:
        return self.inputs + self.optional

    def resolve_attrs(self, attrs: dict[str, Any]) -> dict[str, Any]:
        """Attributes with defaults filled in (assumes `graph.validate` has checked them)."""
        out = {k: a.default for k, a in self.attrs.items()
               if a.default is not REQUIRED and not a.optional}
        out.update((k, v) for k, v in attrs.items()
                   if not (self.attrs[k].optional and v == self.attrs[k].default))
        return out


def _unary(name: str, doc: str) -> OpSpec:
    return OpSpec(name, ("x",), doc=doc)


_POOL_ATTRS = {
    "kernel": Attr(INT_OR_LIST, REQUIRED, _pair, "window size (int or [kh, kw])"),
    "stride": Attr(INT_OR_LIST, None, lambda v: v is None or _pair(v), "defaults to kernel"),
    "padding": Attr(INT_OR_LIST, 0, _nonneg_pair, "zero (avg) / -inf (max) padding"),
}

# W8A8: int8 activations times the int8 weight codes, exact integer sums (docs/format.md;
# kernels/w8a8.py). Optional: float layers and their kernels never carry them.
_INPUT_QUANT = {
    "input_quant": Attr(STR, "none", lambda v: v in ("none", "static", "dynamic"),
                        "'none', 'static' (input_scale, input_zero_point) or 'dynamic' "
                        "(symmetric, one scale per row / per sample)", optional=True),
    "input_scale": Attr(NUM, None, lambda v: v is None or (_positive_float(v)
                                                           and math.isfinite(v)),
                        "static input scale, > 0", optional=True),
    "input_zero_point": Attr(INT, 0, lambda v: -128 <= v <= 127, "static zero point, int8",
                             optional=True),
    "input_bits": Attr(INT, 8, lambda v: v == 8, "activation bits (8)", optional=True),
}

_SPECS = [
    OpSpec("linear", ("x", "weight"), ("bias",), weights=("weight", "bias"),
           attrs=dict(_INPUT_QUANT),
           doc="y[..., out] = x[..., in] @ weight[out, in].T + bias[out]"),
    OpSpec("conv2d", ("x", "weight"), ("bias",), weights=("weight", "bias"), attrs={
        "stride": Attr(INT_OR_LIST, 1, _pair),
        "padding": Attr(INT_OR_LIST, 0, _nonneg_pair),
        "dilation": Attr(INT_OR_LIST, 1, _pair),
        "groups": Attr(INT, 1, _pos_int),
        **_INPUT_QUANT,
    }, doc="x[B, C, H, W], weight[O, C/groups, kh, kw] -> y[B, O, H', W']"),
    OpSpec("maxpool2d", ("x",), attrs=dict(_POOL_ATTRS), doc="x[B, C, H, W] -> y[B, C, H', W']"),
    OpSpec("avgpool2d", ("x",), attrs={
        **_POOL_ATTRS,
        "count_include_pad": Attr(BOOL, True, None, "divide by the full window (PyTorch default)"),
    }, doc="x[B, C, H, W] -> y[B, C, H', W']"),
    OpSpec("global_avgpool", ("x",), doc="x[B, C, H, W] -> y[B, C]"),
    OpSpec("flatten", ("x",), attrs={"axis": Attr(INT, 1, lambda v: v >= 0)},
           doc="x -> y[prod(x.shape[:axis]), prod(x.shape[axis:])]"),
    OpSpec("reshape", ("x",), attrs={"shape": Attr(LIST, REQUIRED, _int_list,
                                                   "0 copies the input dim, -1 is inferred")},
           doc="x -> y with the given shape"),
    OpSpec("transpose", ("x",), attrs={"perm": Attr(LIST, REQUIRED, _int_list)},
           doc="y = x.transpose(perm)"),
    OpSpec("concat", ("xs",), variadic="xs", attrs={"axis": Attr(INT, 1)},
           doc="y = concatenate(xs, axis)"),
    _unary("relu", "y = max(x, 0)"),
    OpSpec("gelu", ("x",),
           attrs={"approximate": Attr(STR, "none", lambda v: v in ("none", "tanh"))},
           doc="y = x * Phi(x) (erf form) or its tanh approximation"),
    _unary("silu", "y = x * sigmoid(x)"),
    _unary("tanh", "y = tanh(x)"),
    _unary("sigmoid", "y = 1 / (1 + exp(-x))"),
    OpSpec("softmax", ("x",), attrs={"axis": Attr(INT, -1)}, doc="y = softmax(x, axis)"),
    OpSpec("add", ("a", "b"), doc="y = a + b (broadcasting)"),
    OpSpec("mul", ("a", "b"), doc="y = a * b (broadcasting)"),
    OpSpec("layernorm", ("x", "weight"), ("bias",), weights=("weight", "bias"),
           attrs={"eps": Attr(NUM, 1e-5, _positive_float)},
           doc="normalise the last axis: (x - mean) / sqrt(var + eps) * weight + bias"),
    OpSpec("rmsnorm", ("x", "weight"), weights=("weight",),
           attrs={"eps": Attr(NUM, 1e-6, _positive_float)},
           doc="x / sqrt(mean(x^2, last axis) + eps) * weight"),
    OpSpec("batchnorm", ("x", "weight", "bias", "mean", "var"),
           weights=("weight", "bias", "mean", "var"),
           attrs={"eps": Attr(NUM, 1e-5, _positive_float)},
           doc="inference batch norm over axis 1 of x[B, C, ...]"),
    OpSpec("embedding", ("ids", "weight"), weights=("weight",),
           doc="ids[B, T] (int) -> weight[ids] [B, T, D]"),
    OpSpec("positions", ("ids",), attrs={"offset": Attr(INT, 0, lambda v: v >= 0)},
           doc="ids[B, T] -> [[offset, ..., offset + T - 1]] (int64, shape [1, T])"),
    OpSpec("attention", ("q", "k", "v"), ("mask",), attrs={
        "num_heads": Attr(INT, REQUIRED, _pos_int),
        "num_kv_heads": Attr(INT, None, lambda v: v is None or _pos_int(v),
                             "grouped key/value heads; defaults to num_heads"),
        "causal": Attr(BOOL, False),
        "rope": Attr(STR, "none", lambda v: v in ("none", "half", "interleaved"),
                     "rotary positions: 'half' rotates (i, i + d/2) pairs as in HF LLaMA, "
                     "'interleaved' rotates (2i, 2i + 1) pairs as in GPT-J / llama.cpp"),
        "rope_base": Attr(NUM, 10000.0, _positive_float),
        "scale": Attr(NUM, None, lambda v: v is None or _positive_float(v),
                      "score scale; defaults to 1 / sqrt(head_dim)"),
    }, doc="q[B, T, H*Dh], k/v[B, T, KV*Dh], mask[B, T] (1 keep, 0 pad) -> y[B, T, H*Dh]"),
    OpSpec("meanpool", ("x",), ("mask",),
           doc="x[B, T, D], mask[B, T] -> masked mean over T [B, D]"),
    OpSpec("l2normalize", ("x",), attrs={"eps": Attr(NUM, 1e-12, _positive_float)},
           doc="y = x / max(||x||_2 over the last axis, eps)"),
]

OPS: dict[str, OpSpec] = {s.name: s for s in _SPECS}
