"""One ONNX lowering per optcli op: `ONNX_OPS[op](em, out, **inputs, **attrs)`.

The calling convention mirrors the kernels' (`kernel(**inputs, **attrs)`, see `optcli.ops`):
inputs are ONNX value names, attributes are resolved to their defaults, and each function must
append nodes to the `Emitter` `em` whose last one writes the value `out`. Shapes in comments use
B = batch, T = sequence, H = heads, Dh = head dim, D = features.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Callable

import numpy as np

if TYPE_CHECKING:
    from optcli.interop.onnx_export import Emitter

# A large finite negative for masked attention scores: exp() underflows to exactly 0, and unlike
# -inf two of them (causal + padding) cannot make inf - inf = NaN.
MASK_VALUE = -1e9


def _pair(v: int | list[int]) -> list[int]:
    """optcli's int / [a] / [a, b] window attributes as ONNX [h, w]."""
    vals = v if isinstance(v, list) else [v]
    return [vals[0], vals[-1]]


# ----------------------------------------------------------------------------- dense layers

def linear(em: Emitter, out: str, x: str, weight: str, bias: str | None = None) -> None:
    # x[..., in] @ weight.T[in, out] (+ bias[out]); ORT fuses MatMul + Add into Gemm on 2-D x
    y = em.op("MatMul", x, em.transposed(weight), out=None if bias else out)
    if bias:
        em.op("Add", y, bias, out=out)


def conv2d(em: Emitter, out: str, x: str, weight: str, bias: str | None = None, *,
           stride, padding, dilation, groups) -> None:
    p = _pair(padding)
    em.op("Conv", x, weight, *([bias] if bias else []), out=out, strides=_pair(stride),
          pads=p + p, dilations=_pair(dilation), group=groups)


def _pool_attrs(kernel, stride, padding) -> dict:
    p = _pair(padding)
    return dict(kernel_shape=_pair(kernel), strides=_pair(kernel if stride is None else stride),
                pads=p + p)


def maxpool2d(em: Emitter, out: str, x: str, *, kernel, stride, padding) -> None:
    em.op("MaxPool", x, out=out, **_pool_attrs(kernel, stride, padding))   # pads act as -inf


def avgpool2d(em: Emitter, out: str, x: str, *, kernel, stride, padding,
              count_include_pad) -> None:
    em.op("AveragePool", x, out=out, count_include_pad=int(count_include_pad),
          **_pool_attrs(kernel, stride, padding))


def global_avgpool(em: Emitter, out: str, x: str) -> None:
    em.op("Flatten", em.op("GlobalAveragePool", x), out=out, axis=1)   # [B,C,1,1] -> [B,C]


# ----------------------------------------------------------------------------- shape ops

def flatten(em: Emitter, out: str, x: str, *, axis) -> None:
    em.op("Flatten", x, out=out, axis=axis)


def reshape(em: Emitter, out: str, x: str, *, shape) -> None:
    em.op("Reshape", x, em.ints(*shape), out=out)   # same 0 / -1 rules as ONNX (allowzero=0)


def transpose(em: Emitter, out: str, x: str, *, perm) -> None:
    em.op("Transpose", x, out=out, perm=perm)


def concat(em: Emitter, out: str, xs: list[str], *, axis) -> None:
    em.op("Concat", *xs, out=out, axis=axis)


# ----------------------------------------------------------------------------- elementwise

def _unary(op_type: str) -> Callable:
    def lower(em: Emitter, out: str, x: str) -> None:
        em.op(op_type, x, out=out)
    return lower


def _binary(op_type: str) -> Callable:
    def lower(em: Emitter, out: str, a: str, b: str) -> None:
        em.op(op_type, a, b, out=out)   # numpy and ONNX broadcast alike
    return lower


def gelu(em: Emitter, out: str, x: str, *, approximate) -> None:
    if approximate == "tanh":   # tanh(sqrt(2/pi) * (x + 0.044715 x^3))
        cube = em.op("Mul", em.op("Mul", x, x), x)
        inner = em.op("Add", x, em.op("Mul", cube, em.scalar(0.044715)))
        phi2 = em.op("Add", em.scalar(1.0), em.op("Tanh", em.op(
            "Mul", inner, em.scalar(math.sqrt(2.0 / math.pi)))))
    else:                       # 1 + erf(x / sqrt 2)
        phi2 = em.op("Add", em.scalar(1.0), em.op("Erf", em.op(
            "Div", x, em.scalar(math.sqrt(2.0)))))
    em.op("Mul", em.op("Mul", x, em.scalar(0.5)), phi2, out=out)


def silu(em: Emitter, out: str, x: str) -> None:
    em.op("Mul", x, em.op("Sigmoid", x), out=out)


def softmax(em: Emitter, out: str, x: str, *, axis) -> None:
    em.op("Softmax", x, out=out, axis=axis)


# ----------------------------------------------------------------------------- normalisation

def layernorm(em: Emitter, out: str, x: str, weight: str, bias: str | None = None, *,
              eps) -> None:
    em.op("LayerNormalization", x, weight, *([bias] if bias else []), out=out, axis=-1,
          epsilon=float(eps))


def rmsnorm(em: Emitter, out: str, x: str, weight: str, *, eps) -> None:
    # x / sqrt(mean(x^2, -1) + eps) * weight; mean keeps dims: [..., 1]
    ms = em.reduce("ReduceMean", em.op("Pow", x, em.scalar(2.0)), [-1], keepdims=1)
    rms = em.op("Sqrt", em.op("Add", ms, em.scalar(eps)))
    em.op("Mul", em.op("Div", x, rms), weight, out=out)


def batchnorm(em: Emitter, out: str, x: str, weight: str, bias: str, mean: str, var: str, *,
              eps) -> None:
    em.op("BatchNormalization", x, weight, bias, mean, var, out=out, epsilon=float(eps))


def l2normalize(em: Emitter, out: str, x: str, *, eps) -> None:
    norm = em.reduce("ReduceL2", x, [-1], keepdims=1)                  # [..., 1]
    em.op("Div", x, em.op("Max", norm, em.scalar(eps)), out=out)


def meanpool(em: Emitter, out: str, x: str, mask: str | None = None) -> None:
    if mask is None:
        em.reduce("ReduceMean", x, [1], keepdims=0, out=out)
        return
    m = em.op("Unsqueeze", em.to_float(mask), em.ints(-1))              # [B, T, 1]
    total = em.reduce("ReduceSum", em.op("Mul", x, m), [1], keepdims=0)  # [B, D]
    count = em.reduce("ReduceSum", m, [1], keepdims=0)                  # [B, 1]
    # an all-padding row divides by a tiny count instead of 0 (as sentence-transformers)
    em.op("Div", total, em.op("Max", count, em.scalar(1e-9)), out=out)


# ----------------------------------------------------------------------------- tokens

def embedding(em: Emitter, out: str, ids: str, weight: str) -> None:
    em.op("Gather", weight, ids, out=out, axis=0)   # [B, T] -> [B, T, D]


def _seq_len(em: Emitter, x: str) -> str:
    """T of x[B, T, ...] as a 1-D int64 tensor [1]."""
    return em.op("Shape", x, start=1, end=2)


def positions(em: Emitter, out: str, ids: str, *, offset) -> None:
    t = em.op("Squeeze", _seq_len(em, ids), em.ints(0))                 # scalar T
    start = em.const(np.array(offset, np.int64), "offset")
    stop = em.op("Add", t, start)
    r = em.op("Range", start, stop, em.const(np.array(1, np.int64), "one"))   # [T]
    em.op("Unsqueeze", r, em.ints(0), out=out)                          # [1, T]


# ----------------------------------------------------------------------------- attention

def _heads(em: Emitter, x: str, n: int, repeat: int) -> str:
    """x[B, T, n*Dh] -> [B, n*repeat, T, Dh], each head repeated `repeat` times (GQA)."""
    x = em.op("Reshape", x, em.ints(0, 0, n, -1))                       # [B, T, n, Dh]
    if repeat > 1:
        x = em.op("Unsqueeze", x, em.ints(3))                           # [B, T, n, 1, Dh]
        x = em.op("Expand", x, em.ints(1, 1, 1, repeat, 1))             # [B, T, n, rep, Dh]
        x = em.op("Reshape", x, em.ints(0, 0, n * repeat, -1))          # [B, T, H, Dh]
    return em.op("Transpose", x, perm=[0, 2, 1, 3])                     # [B, H, T, Dh]


def rope_tables(style: str, head_dim: int, base: float,
                rows: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """cos, sin [rows, Dh] and the signed permutation R [Dh, Dh] with rope(x) = x*cos + (x@R)*sin.

    'half' pairs (i, i + Dh/2) as HF LLaMA's rotate_half; 'interleaved' pairs (2i, 2i + 1) as
    GPT-J. Angles are computed in float64 then rounded once. x@R is exact: each output column
    has a single +-1 entry.
    """
    half = head_dim // 2
    inv_freq = base ** (-np.arange(half, dtype=np.float64) * 2.0 / head_dim)   # [Dh/2]
    angles = np.arange(rows, dtype=np.float64)[:, None] * inv_freq           # [rows, Dh/2]
    r = np.zeros((head_dim, head_dim), np.float32)
    i = np.arange(half)
    if style == "half":
        angles = np.concatenate([angles, angles], axis=1)
        r[i + half, i], r[i, i + half] = -1.0, 1.0        # (x@R) = [-x2, x1]
    else:
        angles = np.repeat(angles, 2, axis=1)
        # (x @ R)[2i] = -x[2i + 1], (x @ R)[2i + 1] = x[2i]
        r[2 * i + 1, 2 * i], r[2 * i, 2 * i + 1] = -1.0, 1.0
    return np.cos(angles).astype(np.float32), np.sin(angles).astype(np.float32), r


def _rope(em: Emitter, x: str, t: str, style: str, head_dim: int, base: float) -> str:
    """Rotary positions 0..T-1 on x[B, H, T, Dh], tables sliced to T rows."""
    cos, sin, r = rope_tables(style, head_dim, base, em.max_positions)
    zero = em.ints(0)
    cos_t = em.op("Slice", em.const(cos, "rope_cos"), zero, t, zero)   # [T, Dh]
    sin_t = em.op("Slice", em.const(sin, "rope_sin"), zero, t, zero)
    rotated = em.op("MatMul", x, em.const(r, "rope_rotate"))           # [B, H, T, Dh]
    return em.op("Add", em.op("Mul", x, cos_t), em.op("Mul", rotated, sin_t))


def _mask_bias(em: Emitter, t: str, causal: bool, mask: str | None) -> str | None:
    """0 where query t may see key s, MASK_VALUE (or twice it) where not: [T, T] or [B, 1, T, T].

    Causal hides keys s > t (the strict upper triangle; causal implies S = T); the padding mask
    mask[B, S] (nonzero keep, 0 pad) hides padded keys as (mask == 0) * MASK_VALUE [B, 1, 1, S].
    """
    bias = None
    if causal:
        fill = em.filled(em.op("Concat", t, t, axis=0), MASK_VALUE)      # [T, T]
        bias = em.op("Trilu", fill, em.const(np.array(1, np.int64), "one"), upper=1)
    if mask:
        padded = em.to_float(em.op("Equal", em.to_float(mask), em.scalar(0.0)))   # [B, S]
        pad = em.op("Mul", padded, em.scalar(MASK_VALUE))
        pad = em.op("Unsqueeze", pad, em.ints(1, 2))                    # [B, 1, 1, S]
        bias = pad if bias is None else em.op("Add", bias, pad)
    return bias


def _any_key(em: Emitter, bias: str) -> str:
    """1.0 for query rows with at least one visible key, else 0.0: [..., T, 1].

    The reference outputs zeros for a row with nothing to attend to (e.g. a padded position
    under a causal mask), where a plain softmax would average every value.
    """
    visible = em.to_float(em.op("Equal", bias, em.scalar(0.0)))
    return em.reduce("ReduceMax", visible, [-1], keepdims=1)


def attention(em: Emitter, out: str, q: str, k: str, v: str, mask: str | None = None, *,
              num_heads, num_kv_heads, causal, rope, rope_base, scale) -> None:
    kv_heads = num_kv_heads or num_heads
    head_dim = None
    if rope != "none" or scale is None:
        head_dim = em.static_shape(q)[-1] // num_heads
    t = _seq_len(em, q)                                                 # [1] = T
    qh = _heads(em, q, num_heads, 1)                                    # [B, H, T, Dh]
    kh = _heads(em, k, kv_heads, num_heads // kv_heads)
    vh = _heads(em, v, kv_heads, num_heads // kv_heads)
    if rope != "none":
        qh = _rope(em, qh, t, rope, head_dim, rope_base)
        kh = _rope(em, kh, _seq_len(em, k), rope, head_dim, rope_base)
    kt = em.op("Transpose", kh, perm=[0, 1, 3, 2])                      # [B, H, Dh, S]
    scale = 1.0 / math.sqrt(head_dim) if scale is None else scale
    scores = em.op("Mul", em.op("MatMul", qh, kt), em.scalar(scale))    # [B, H, T, S]
    bias = _mask_bias(em, t, causal, mask)
    if bias is None:
        probs = em.op("Softmax", scores, axis=-1)
    else:
        probs = em.op("Mul", em.op("Softmax", em.op("Add", scores, bias), axis=-1),
                      _any_key(em, bias))
    y = em.op("Transpose", em.op("MatMul", probs, vh), perm=[0, 2, 1, 3])   # [B, T, H, Dh]
    em.op("Reshape", y, em.ints(0, 0, -1), out=out)                     # [B, T, H*Dh]


ONNX_OPS: dict[str, Callable[..., None]] = {
    "linear": linear, "conv2d": conv2d, "maxpool2d": maxpool2d, "avgpool2d": avgpool2d,
    "global_avgpool": global_avgpool, "flatten": flatten, "reshape": reshape,
    "transpose": transpose, "concat": concat, "relu": _unary("Relu"), "gelu": gelu,
    "silu": silu, "tanh": _unary("Tanh"), "sigmoid": _unary("Sigmoid"), "softmax": softmax,
    "add": _binary("Add"), "mul": _binary("Mul"), "layernorm": layernorm, "rmsnorm": rmsnorm,
    "batchnorm": batchnorm, "embedding": embedding, "positions": positions,
    "attention": attention, "meanpool": meanpool, "l2normalize": l2normalize,
}
