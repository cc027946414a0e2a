"""Forward and backward of the elementwise ops and softmax.

    relu      dy * [x > 0]
    sigmoid   dy * y (1 - y)                tanh   dy * (1 - y^2)
    silu      dy * (s + x s (1 - s)),  s = sigmoid(x)
    gelu      exact: dy * (Phi(x) + x phi(x));  tanh form (GPT-2): d/dx of
              x/2 (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3)
    softmax   dy_x = y * (dy - sum(dy * y, axis))
    add, mul  NumPy broadcasting: a gradient is summed over the axes its input was broadcast on
Phi uses math.erf in float64 (gradient checks) and the fast float32 erf (1.4e-7) in training.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from optcli.kernels.fast.erf import erf as fast_erf

_erf64 = np.vectorize(math.erf, otypes=[np.float64])
_TANH_C = math.sqrt(2 / math.pi)


def _erf(x: np.ndarray) -> np.ndarray:
    return _erf64(x) if x.dtype == np.float64 else fast_erf(x).astype(x.dtype, copy=False)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    z = np.exp(-np.abs(x))                  # exp(-|x|): neither branch overflows
    return np.where(x >= 0, 1 / (1 + z), z / (1 + z)).astype(x.dtype, copy=False)


def relu_forward(inputs: dict[str, Any], attrs: dict[str, Any]):
    x = inputs["x"]
    return np.maximum(x, 0), x > 0


def relu_backward(dy, positive, needs: frozenset[str]) -> dict[str, np.ndarray]:
    return {"x": dy * positive}


def gelu_forward(inputs: dict[str, Any], attrs: dict[str, Any]):
    x = inputs["x"]
    if attrs["approximate"] == "tanh":
        t = np.tanh(_TANH_C * (x + 0.044715 * x ** 3))
        return 0.5 * x * (1 + t), (x, t, "tanh")
    phi_big = 0.5 * (1 + _erf(x / math.sqrt(2)))                      # Phi(x)
    return x * phi_big, (x, phi_big, "none")


def gelu_backward(dy, saved, needs: frozenset[str]) -> dict[str, np.ndarray]:
    x, t, kind = saved
    if kind == "tanh":
        du = _TANH_C * (1 + 3 * 0.044715 * x ** 2)
        return {"x": dy * (0.5 * (1 + t) + 0.5 * x * (1 - t ** 2) * du)}
    pdf = np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)               # phi(x)
    return {"x": dy * (t + x * pdf)}


def sigmoid_forward(inputs: dict[str, Any], attrs: dict[str, Any]):
    y = _sigmoid(inputs["x"])
    return y, y


def sigmoid_backward(dy, y, needs: frozenset[str]) -> dict[str, np.ndarray]:
    return {"x": dy * y * (1 - y)}


def silu_forward(inputs: dict[str, Any], attrs: dict[str, Any]):
    x = inputs["x"]
    s = _sigmoid(x)
    return x * s, (x, s)


def silu_backward(dy, saved, needs: frozenset[str]) -> dict[str, np.ndarray]:
    x, s = saved
    return {"x": dy * (s + x * s * (1 - s))}


def tanh_forward(inputs: dict[str, Any], attrs: dict[str, Any]):
    y = np.tanh(inputs["x"])
    return y, y


def tanh_backward(dy, y, needs: frozenset[str]) -> dict[str, np.ndarray]:
    return {"x": dy * (1 - y * y)}


def softmax_forward(inputs: dict[str, Any], attrs: dict[str, Any]):
    x, axis = inputs["x"], attrs["axis"]
    e = np.exp(x - x.max(axis=axis, keepdims=True))         # max subtracted: no overflow
    y = e / e.sum(axis=axis, keepdims=True)
    return y, (y, axis)


def softmax_backward(dy, saved, needs: frozenset[str]) -> dict[str, np.ndarray]:
    y, axis = saved
    return {"x": y * (dy - (dy * y).sum(axis=axis, keepdims=True))}


def unbroadcast(g: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum g over the axes along which an input of `shape` was broadcast."""
    g = g.sum(axis=tuple(range(g.ndim - len(shape)))) if g.ndim > len(shape) else g
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and g.shape[i] != 1)
    return g.sum(axis=axes, keepdims=True) if axes else g


def _operands(inputs: dict[str, Any], op: str):
    """a, b with an integer operand cast to the other's float dtype (no float64 promotion)."""
    a, b = np.asarray(inputs["a"]), np.asarray(inputs["b"])
    if a.dtype.kind == "f" and b.dtype.kind != "f":
        b = b.astype(a.dtype)
    elif b.dtype.kind == "f" and a.dtype.kind != "f":
        a = a.astype(b.dtype)
    try:
        np.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        raise ValueError(f"{op}: shapes {list(a.shape)} and {list(b.shape)} "
                         "do not broadcast") from None
    return a, b


def add_forward(inputs: dict[str, Any], attrs: dict[str, Any]):
    a, b = _operands(inputs, "add")
    return a + b, (a.shape, b.shape)


def add_backward(dy, shapes, needs: frozenset[str]) -> dict[str, np.ndarray]:
    return {role: unbroadcast(dy, s) for role, s in zip("ab", shapes) if role in needs}


def mul_forward(inputs: dict[str, Any], attrs: dict[str, Any]):
    a, b = _operands(inputs, "mul")
    return a * b, (a, b)


def mul_backward(dy, saved, needs: frozenset[str]) -> dict[str, np.ndarray]:
    a, b = saved
    out = {}
    if "a" in needs:
        out["a"] = unbroadcast(dy * b, a.shape)
    if "b" in needs:
        out["b"] = unbroadcast(dy * a, b.shape)
    return out
