"""Fast elementwise ops and softmax: float32, in-place passes over L2-sized blocks.

Single-ufunc ops (tanh, add, mul) are one NumPy call. Multi-pass ops (gelu, silu, sigmoid,
softmax) and relu (see there) run block by block with `out=` arguments, so no full-size
temporaries are allocated and every pass reads cache, not DRAM. Where exp overflows to inf
the limit is the right answer (0, -0 or x), so the overflow warning is silenced rather than
paid for with clips (a clip against scalars is one of NumPy's slow non-SIMD loops).
"""

from __future__ import annotations

import numpy as np

from optcli.kernels.fast.blocks import BLOCK, blockwise, spans
from optcli.kernels.fast.erf import gelu_erf_block

_ZERO = np.float32(0)
_ZEROS = np.zeros(BLOCK, np.float32)
_TANH_C = np.float32(-2 * np.sqrt(2 / np.pi))


def _relu_block(x, out) -> None:
    np.maximum(x, _ZEROS[:x.size], out=out)


def relu(x: np.ndarray) -> np.ndarray:
    """max(x, 0). NumPy's maximum against a scalar takes a slow non-SIMD loop (0.37 ns per
    element); against an array of zeros it is SIMD (~0.1 ns), hence the zeros block."""
    x = np.asarray(x, np.float32)
    return np.maximum(x, _ZERO) if x.size < 16384 else blockwise(x, _relu_block, 0)


def relu_inplace(a: np.ndarray) -> np.ndarray:
    """a = max(a, 0) in place, for a kernel's own fresh float32 output (SIMD zeros blocks when
    a is C-contiguous; 4x faster than the scalar loop already at 5k elements)."""
    if a.size <= 512 or not a.flags.c_contiguous:     # tiny: the zeros slice costs more
        return np.maximum(a, _ZERO, out=a)
    flat = a.reshape(-1)
    if flat.size <= BLOCK:
        np.maximum(flat, _ZEROS[:flat.size], out=flat)
        return a
    for sl in spans(flat.size):
        np.maximum(flat[sl], _ZEROS[:sl.stop - sl.start], out=flat[sl])
    return a


def tanh(x: np.ndarray) -> np.ndarray:
    return np.tanh(np.asarray(x, np.float32))


def _sigmoid_block(x, out) -> None:
    """out = 1 / (1 + exp(-x)); exp overflows to inf for x < -88, giving exactly 0."""
    np.negative(x, out=out)
    np.exp(out, out=out)
    out += 1
    np.reciprocal(out, out=out)


def _silu_block(x, out) -> None:
    """out = x / (1 + exp(-x)); -0 where exp overflows."""
    np.negative(x, out=out)
    np.exp(out, out=out)
    out += 1
    np.divide(x, out, out=out)


def _gelu_tanh_block(x, out) -> None:
    """0.5 x (1 + tanh(c (x + 0.044715 x^3))) = x / (1 + exp(-2c (x + 0.044715 x^3)))."""
    np.multiply(x, x, out=out)
    out *= np.float32(0.044715) * _TANH_C
    out += _TANH_C
    out *= x
    np.exp(out, out=out)
    out += 1
    np.divide(x, out, out=out)


# exp (and x^k for huge |x|) overflowing to inf is the right limit in all of these: the result
# is then exactly 0, -0 or x. Ignoring the warning saves the clip passes (scalar clip/min/max
# are slow non-SIMD loops in NumPy).
def sigmoid(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return blockwise(x, _sigmoid_block, 0)


def silu(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        return blockwise(x, _silu_block, 0)


def gelu(x: np.ndarray, approximate: str = "none") -> np.ndarray:
    """Exact erf GELU (see `erf.py`, ~6e-7 abs) or the tanh approximation."""
    with np.errstate(over="ignore"):
        if approximate == "tanh":
            return blockwise(x, _gelu_tanh_block, 0)
        return blockwise(x, gelu_erf_block, 1)


def bias_gelu_inplace(y: np.ndarray, bias: np.ndarray | None,
                      approximate: str = "none") -> np.ndarray:
    """y[N, D] = gelu(y + bias) in place on a fresh C-contiguous output, one L2 block of rows
    at a time: the bias add and GELU's passes all read cache (the result goes through a
    scratch block, as GELU's passes read x until the last one)."""
    block_fn, n_scratch = (_gelu_tanh_block, 0) if approximate == "tanh" else (gelu_erf_block, 1)
    rows_per = max(1, BLOCK // max(y.shape[1], 1))
    scratch = np.empty((1 + n_scratch, min(y.shape[0], rows_per) * y.shape[1]), np.float32)
    with np.errstate(over="ignore"):
        for sl in spans(y.shape[0], 1, rows_per):
            rows = y[sl]
            if bias is not None:
                rows += bias
            flat = rows.reshape(-1)
            res = scratch[0, :flat.size]
            block_fn(flat, res, *scratch[1:, :flat.size])
            np.copyto(flat, res)
    return y


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """exp(x - max) / sum over `axis`, one L2-sized block of rows at a time."""
    x = np.asarray(x, np.float32)
    if axis % x.ndim != x.ndim - 1:
        return np.moveaxis(softmax(np.moveaxis(x, axis, -1)), -1, axis)
    rows = np.ascontiguousarray(x).reshape(-1, x.shape[-1])
    out = np.empty_like(rows)
    for sl in spans(rows.shape[0], rows.shape[1]):
        o = out[sl]
        np.subtract(rows[sl], rows[sl].max(axis=1, keepdims=True), out=o)
        np.exp(o, out=o)
        o /= np.einsum("ij->i", o)[:, None]     # row sums: 3x faster than .sum(axis=1)
    return out.reshape(x.shape)


def _binary(op: str, ufunc: np.ufunc, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = np.asarray(a), np.asarray(b)
    try:
        if a.dtype == b.dtype == np.float32:        # the common case: no casting to resolve
            return ufunc(a, b)
        both_int = a.dtype.kind in "iub" and b.dtype.kind in "iub"
        return ufunc(a, b) if both_int else ufunc(a, b, dtype=np.float32)
    except ValueError:
        raise ValueError(f"{op}: shapes {list(a.shape)} and {list(b.shape)} "
                         f"do not broadcast") from None


def add(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return _binary("add", np.add, a, b)


def mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return _binary("mul", np.multiply, a, b)
