"""Reference W8A8 linear and conv2d: int8 activation codes times int8 weight codes summed in
int64, the oracle of the exact-integer contract (kernels/w8a8.py, docs/format.md).

`quantize_activation` is the specification of the activation codes and is shared with the fast
tier, so both tiers see the same codes; it works in float32 (x and the scale as float32, one
IEEE division, round half to even):

    static   xq = clip(rint(x / s) + z_x, -128, 127)             s, z_x from the layer's attrs
    dynamic  s[r] = max|x[r]| / 127 (1 where the row is all zero), xq = rint(x / s[r]),
             per row r of x[N, in] (linear: per token) or per sample of x[B, C, H, W] (conv)

This is static/dynamic quantization as in Jacob et al. 2018 (integer-arithmetic-only
inference) and the per-token dynamic scheme of LLM.int8() / ZeroQuant (Dettmers et al. 2022;
Yao et al. 2022).
"""

from __future__ import annotations

import numpy as np

from optcli.kernels.reference.contract import check_conv, check_linear, pair, window_out
from optcli.kernels.w8a8 import Int8Codes


def quantize_activation(x: np.ndarray, mode: str, scale: float | None,
                        zero_point: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(codes, s): int8 codes of x as float32 (exact integers) and the scale, float32, shaped
    to broadcast against x ([] static; [N, 1, ...] dynamic, one per index of axis 0)."""
    x = np.asarray(x, np.float32)
    if mode == "static":
        s = np.float32(scale)
        q = np.rint(x / s)
        q += np.float32(zero_point)
        return np.clip(q, -128, 127, out=q), np.asarray(s)
    if mode != "dynamic":
        raise ValueError(f"input_quant {mode!r}: expected 'static' or 'dynamic'")
    amax = np.abs(x).reshape(x.shape[0], -1).max(axis=1, initial=0.0)        # [N]
    s = np.where(amax > 0, amax / np.float32(127), np.float32(1)).astype(np.float32)
    s = s.reshape((-1,) + (1,) * (x.ndim - 1))
    q = np.rint(x / s)
    return np.clip(q, -127, 127, out=q), s


def linear_w8a8(x: np.ndarray, weight: Int8Codes, bias: np.ndarray | None = None,
                input_quant: str = "none", input_scale: float | None = None,
                input_zero_point: int = 0, input_bits: int = 8) -> np.ndarray:
    """y[..., o] = s_x * s_w[o] * sum_i (xq[..., i] - z_x) * w'[o, i] + bias[o], sum in int64."""
    check_linear(x, weight.w, bias)
    x2 = np.asarray(x, np.float32).reshape(-1, x.shape[-1])                  # [N, in]
    q, s = quantize_activation(x2, input_quant, input_scale, input_zero_point)
    xi = q.astype(np.int64) - input_zero_point                               # [N, in]
    acc = xi @ weight.w.astype(np.int64).T                                   # [N, out] int64
    y = acc.astype(np.float64) * s.astype(np.float64) * weight.scale.astype(np.float64)
    if bias is not None:
        y += bias
    return y.astype(np.float32).reshape(x.shape[:-1] + (weight.shape[0],))


def conv2d_w8a8(x: np.ndarray, weight: Int8Codes, bias: np.ndarray | None = None, stride=1,
                padding=0, dilation=1, groups: int = 1, input_quant: str = "none",
                input_scale: float | None = None, input_zero_point: int = 0,
                input_bits: int = 8) -> np.ndarray:
    """conv2d of (xq - z_x) and w' in int64 (zero padding of x is padding of xq with z_x),
    then y[b, o] = acc * s_x[b] * s_w[o] + bias[o]."""
    check_conv(x, weight.w, bias, groups)
    q, s = quantize_activation(x, input_quant, input_scale, input_zero_point)
    acc = int_conv2d(q.astype(np.int64) - input_zero_point, weight.w.astype(np.int64),
                     stride, padding, dilation, groups)
    y = acc.astype(np.float64) * s.astype(np.float64).reshape(-1, 1, 1, 1)
    y *= weight.scale.astype(np.float64)[None, :, None, None]
    if bias is not None:
        y += np.asarray(bias, np.float64)[None, :, None, None]
    return y.astype(np.float32)


def int_conv2d(x: np.ndarray, w: np.ndarray, stride, padding, dilation,
               groups: int) -> np.ndarray:
    """Integer conv2d (torch semantics, zero padding): x[B, C, H, W] int64 *
    w[O, C/groups, kh, kw] int64 -> acc[B, O, Ho, Wo] int64, one window at a time."""
    (sh, sw), (ph, pw), (dh, dw) = pair(stride), pair(padding), pair(dilation)
    B, C, H, W = x.shape
    co, cg, kh, kw = w.shape
    og = co // groups
    ho, wo = window_out("conv2d", H, kh, sh, ph, dh), window_out("conv2d", W, kw, sw, pw, dw)
    xp = np.zeros((B, C, H + 2 * ph, W + 2 * pw), np.int64)
    xp[:, :, ph:ph + H, pw:pw + W] = x
    acc = np.zeros((B, co, ho, wo), np.int64)
    for g in range(groups):
        xg, wg = xp[:, g * cg:(g + 1) * cg], w[g * og:(g + 1) * og]
        for oh in range(ho):
            rows = oh * sh + dh * np.arange(kh)
            for ow in range(wo):
                win = xg[:, :, rows][:, :, :, ow * sw + dw * np.arange(kw)]    # [B, cg, kh, kw]
                acc[:, g * og:(g + 1) * og, oh, ow] = np.einsum("bckl,ockl->bo", win, wg)
    return acc
