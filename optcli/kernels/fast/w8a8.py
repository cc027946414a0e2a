"""Fast W8A8 linear and conv2d: exact integer sums computed by float32 BLAS.

NumPy has no int8 GEMM (integer matmul does not use BLAS and is ~50x slower), so the int8
codes are multiplied as float32 values, which is exact under one bound:

    every product |xq * w'| <= 128 * wmax is an integer, and every partial sum a GEMM forms is
    the sum of a subset of one output's K products, so |partial| <= K * 128 * wmax. Integers up
    to 2^24 are exact in float32, so with K * 128 * wmax <= 2^24 no addition ever rounds, in
    whatever order or blocking the BLAS adds (with or without FMA). For symmetric weights
    (wmax <= 127) that is K <= 1024 (`Int8Codes.chunk`).

Longer inner dimensions are split into chunks of that length; each chunk's exact float32 sum
is accumulated in float64, exact for |sum| < 2^53 (K < 2^37 at least). conv2d runs through the
im2col kernel (kernels/fast/conv.py) on the padded activation codes, chunked over input
channels (K = Cg*kh*kw per chunk); a kernel window with kh*kw > chunk alone falls back to the
int64 reference. This assumes a classical GEMM (OpenBLAS, MKL, Accelerate), not a Strassen-like
one, whose intermediate sums are not subset sums. The activation codes come from the same
`quantize_activation` as the reference, so both tiers see the same integers.
"""

from __future__ import annotations

import numpy as np

from optcli.kernels.fast.conv import conv2d
from optcli.kernels.reference import w8a8 as ref
from optcli.kernels.reference.contract import check_conv, check_linear, pair
from optcli.kernels.w8a8 import Int8Codes
from optcli.kernels.w8a8_ort import OrtInt8Linear


def int_matmul(q: np.ndarray, wt: np.ndarray, chunk: int) -> np.ndarray:
    """Exact q[N, K] @ wt[K, out] of integer-valued float32 operands whose partial sums over
    `chunk` inner indices stay <= 2^24: float32 when K <= chunk, else float64 chunk sums."""
    K = q.shape[1]
    if K <= chunk:
        return q @ wt
    acc = np.zeros((q.shape[0], wt.shape[1]), np.float64)
    for k0 in range(0, K, chunk):
        acc += q[:, k0:k0 + chunk] @ wt[k0:k0 + chunk]                 # exact float32 chunk
    return acc


def int_conv(q: np.ndarray, w: np.ndarray, stride, dilation, groups: int,
             chunk: int) -> np.ndarray:
    """Exact conv2d (no padding: q is padded already) of integer-valued float32 codes
    q[B, C, H, W] and w[O, Cg, kh, kw]: float32 when Cg*kh*kw <= chunk, else float64."""
    co, cg, kh, kw = w.shape
    if cg * kh * kw <= chunk:
        return conv2d(q, w, None, stride, 0, dilation, groups)
    if kh * kw > chunk:                                     # one tap window alone is too long
        return ref.int_conv2d(q.astype(np.int64), w.astype(np.int64), stride, 0, dilation,
                              groups).astype(np.float64)
    og, step = co // groups, chunk // (kh * kw)             # input channels per chunk
    parts = []
    for g in range(groups):
        xg, wg = q[:, g * cg:(g + 1) * cg], w[g * og:(g + 1) * og]
        acc = None
        for c0 in range(0, cg, step):
            part = conv2d(xg[:, c0:c0 + step], np.ascontiguousarray(wg[:, c0:c0 + step]),
                          None, stride, 0, dilation, 1).astype(np.float64)
            acc = part if acc is None else acc + part
        parts.append(acc)
    return parts[0] if groups == 1 else np.concatenate(parts, axis=1)


def _finish(acc: np.ndarray, zero_point: int, col_sum: np.ndarray, s: np.ndarray,
            scale: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    """y = (acc - z_x * col_sum) * s_x * s_w + bias as float32; the z_x correction is exact
    in float64. `col_sum`, `scale` and `bias` are already shaped to broadcast over acc."""
    if zero_point:
        acc = acc.astype(np.float64) - zero_point * col_sum
    if acc.dtype == np.float32:
        acc *= s
        acc *= scale
    else:
        acc = (acc * s.astype(np.float64) * scale).astype(np.float32)
    if bias is not None:
        acc += bias
    return acc


def linear_w8a8(x: np.ndarray, weight: Int8Codes | OrtInt8Linear,
                bias: np.ndarray | None = None, input_quant: str = "none",
                input_scale: float | None = None, input_zero_point: int = 0,
                input_bits: int = 8) -> np.ndarray:
    """y[..., o] = s_x * s_w[o] * sum_i (xq[..., i] - z_x) * w'[o, i] + bias[o], sum exact:
    by float32 sgemm chunks (Int8Codes) or onnxruntime's int8 MatMulInteger (OrtInt8Linear,
    kernels/w8a8_ort.py), the same sums, then the same scaling: equal outputs."""
    ort_weight = isinstance(weight, OrtInt8Linear)
    check_linear(x, weight if ort_weight else weight.w, bias)
    x2 = np.asarray(x, np.float32).reshape(-1, x.shape[-1])                  # [N, in]
    q, s = ref.quantize_activation(x2, input_quant, input_scale, input_zero_point)
    if ort_weight:                          # int32 sums with z_x already taken off
        acc = weight.int_matmul(q, input_zero_point)
        f32 = weight.exact_f32 and not input_zero_point        # the dtype _finish gets below
        acc = acc.astype(np.float32 if f32 else np.float64)
        y = _finish(acc, 0, None, s, weight.scale, bias)
    else:
        acc = int_matmul(q, weight.w.T, weight.chunk())                      # [N, out]
        y = _finish(acc, input_zero_point, weight.col_sum, s, weight.scale, bias)
    return y.reshape(x.shape[:-1] + (weight.shape[0],))


def conv2d_w8a8(x: np.ndarray, weight: Int8Codes, bias: np.ndarray | None = None, stride=1,
                padding=0, dilation=1, groups: int = 1, input_quant: str = "none",
                input_scale: float | None = None, input_zero_point: int = 0,
                input_bits: int = 8) -> np.ndarray:
    """x[B, C, H, W] -> y[B, O, Ho, Wo]. x is zero-padded *before* it is quantized, so the
    padding holds code z_x, and (xq - z_x) * w' summed over a window is acc - z_x * col_sum."""
    check_conv(x, weight.w, bias, groups)
    ph, pw = pair(padding)
    x = np.asarray(x, np.float32)
    if ph or pw:
        x = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    q, s = ref.quantize_activation(x, input_quant, input_scale, input_zero_point)
    acc = int_conv(q, weight.w, stride, dilation, groups, weight.chunk())    # [B, O, Ho, Wo]
    c4 = (slice(None), None, None)
    return _finish(acc, input_zero_point, weight.col_sum[c4], s, weight.scale[c4],
                   None if bias is None else np.asarray(bias, np.float32)[c4])
