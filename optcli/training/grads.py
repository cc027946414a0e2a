"""The gradient table: for every op of optcli/ops.py a forward that keeps what its backward
needs, and the backward (reverse-mode, Griewank & Walther, "Evaluating Derivatives", 2008).

    forward(inputs: role -> array (a list for concat), attrs resolved) -> (y, saved)
    backward(dy, saved, needs: roles whose gradient is wanted) -> role -> gradient

Forwards compute what the reference kernels compute (tests/training check both), but keep
their input's float dtype: float32 when training, float64 in the finite-difference checks.
Roles that hold integers (ids, positions, masks) and batchnorm's running statistics never get
a gradient; `NO_GRAD` lists them. A new op without an entry here fails the test that walks
the op table.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

from optcli.training import (
    grad_attention,
    grad_dense,
    grad_elementwise,
    grad_norms,
    grad_pool,
    grad_sequence,
    grad_shape,
)


class OpGrad(NamedTuple):
    forward: Callable[[dict[str, Any], dict[str, Any]], tuple[Any, Any]]
    backward: Callable[[Any, Any, frozenset[str]], dict[str, Any]]


def _pair(module, op: str, backward: str | None = None) -> OpGrad:
    return OpGrad(getattr(module, f"{op}_forward"), getattr(module, f"{backward or op}_backward"))


GRADS: dict[str, OpGrad] = {
    "linear": _pair(grad_dense, "linear"),
    "conv2d": _pair(grad_dense, "conv2d"),
    "maxpool2d": _pair(grad_pool, "maxpool2d"),
    "avgpool2d": _pair(grad_pool, "avgpool2d"),
    "global_avgpool": _pair(grad_pool, "global_avgpool"),
    "flatten": _pair(grad_shape, "flatten", "reshape"),
    "reshape": _pair(grad_shape, "reshape"),
    "transpose": _pair(grad_shape, "transpose"),
    "concat": _pair(grad_shape, "concat"),
    "relu": _pair(grad_elementwise, "relu"),
    "gelu": _pair(grad_elementwise, "gelu"),
    "silu": _pair(grad_elementwise, "silu"),
    "tanh": _pair(grad_elementwise, "tanh"),
    "sigmoid": _pair(grad_elementwise, "sigmoid"),
    "softmax": _pair(grad_elementwise, "softmax"),
    "add": _pair(grad_elementwise, "add"),
    "mul": _pair(grad_elementwise, "mul"),
    "layernorm": _pair(grad_norms, "layernorm"),
    "rmsnorm": _pair(grad_norms, "rmsnorm"),
    "batchnorm": _pair(grad_norms, "batchnorm"),
    "embedding": _pair(grad_sequence, "embedding"),
    "positions": _pair(grad_sequence, "positions"),
    "attention": _pair(grad_attention, "attention"),
    "meanpool": _pair(grad_sequence, "meanpool"),
    "l2normalize": _pair(grad_sequence, "l2normalize"),
}

# (op, role) pairs that never carry a gradient: integer inputs and fixed statistics.
NO_GRAD = {("embedding", "ids"), ("positions", "ids"), ("attention", "mask"),
           ("meanpool", "mask"), ("batchnorm", "mean"), ("batchnorm", "var")}


def differentiable(op: str, role: str) -> bool:
    return op != "positions" and (op, role) not in NO_GRAD
