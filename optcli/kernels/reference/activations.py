"""Reference elementwise ops and softmax, in float64 from their textbook formulas.

GELU's exact form uses `math.erf` element by element, so it is the oracle the fast tier's
erf approximation is measured against. Float inputs give float32 outputs; add/mul keep
integer dtypes when both inputs are integer.
"""

from __future__ import annotations

import math

import numpy as np

_erf = np.vectorize(math.erf, otypes=[np.float64])


def _f64(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, np.float64)


def relu(x: np.ndarray) -> np.ndarray:
    return np.where(_f64(x) > 0, x, 0.0).astype(np.float32)


def gelu(x: np.ndarray, approximate: str = "none") -> np.ndarray:
    """x * Phi(x) with Phi(x) = (1 + erf(x / sqrt 2)) / 2; 'tanh' is the GPT-2 approximation."""
    x = _f64(x)
    if approximate == "tanh":
        inner = math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)
        return (0.5 * x * (1 + np.tanh(inner))).astype(np.float32)
    return (0.5 * x * (1 + _erf(x / math.sqrt(2)))).astype(np.float32)


def sigmoid(x: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-x)), written with exp(-|x|) so neither branch overflows."""
    x = _f64(x)
    z = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + z), z / (1 + z)).astype(np.float32)


def silu(x: np.ndarray) -> np.ndarray:
    return (_f64(x) * sigmoid(x).astype(np.float64)).astype(np.float32)


def tanh(x: np.ndarray) -> np.ndarray:
    return np.tanh(_f64(x)).astype(np.float32)


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """exp(x - max) / sum(exp(x - max)): subtracting the max keeps exp from overflowing."""
    x = _f64(x)
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return (e / e.sum(axis=axis, keepdims=True)).astype(np.float32)


def _binary(op: str, a: np.ndarray, b: np.ndarray, fn) -> np.ndarray:
    a, b = np.asarray(a), np.asarray(b)
    try:
        out = fn(a.astype(np.float64) if a.dtype.kind == "f" else a,
                 b.astype(np.float64) if b.dtype.kind == "f" else b)
    except ValueError:
        raise ValueError(f"{op}: shapes {list(a.shape)} and {list(b.shape)} "
                         f"do not broadcast") from None
    return out if out.dtype.kind in "iu" else out.astype(np.float32)


def add(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return _binary("add", a, b, np.add)


def mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return _binary("mul", a, b, np.multiply)
