"""Reference linear and conv2d: float64, written so each line can be checked against the formula.

conv2d follows `torch.nn.functional.conv2d` (cross-correlation, zero padding, stride, dilation,
groups): for output position (oh, ow) the window rows are oh*sh + dh*[0..kh) in the padded
input, and each group's output channels see only that group's input channels.
"""

from __future__ import annotations

import numpy as np

from optcli.kernels.reference.contract import check_conv, check_linear, pair, window_out


def linear(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None) -> np.ndarray:
    """y[..., out] = sum_in x[..., in] * weight[out, in] + bias[out]."""
    check_linear(x, weight, bias)
    y = np.asarray(x, np.float64) @ np.asarray(weight, np.float64).T
    if bias is not None:
        y = y + bias
    return y.astype(np.float32)


def conv2d(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None, stride=1,
           padding=0, dilation=1, groups: int = 1) -> np.ndarray:
    """x[B, C, H, W] * weight[O, C/groups, kh, kw] -> y[B, O, Ho, Wo], one window at a time."""
    check_conv(x, weight, bias, groups)
    (sh, sw), (ph, pw), (dh, dw) = pair(stride), pair(padding), pair(dilation)
    B, C, H, W = x.shape
    co, cg, kh, kw = weight.shape
    og = co // groups
    ho = window_out("conv2d", H, kh, sh, ph, dh)
    wo = window_out("conv2d", W, kw, sw, pw, dw)
    xp = np.zeros((B, C, H + 2 * ph, W + 2 * pw))
    xp[:, :, ph:ph + H, pw:pw + W] = x
    w = np.asarray(weight, np.float64)
    y = np.zeros((B, co, ho, wo))
    for g in range(groups):
        xg, wg = xp[:, g * cg:(g + 1) * cg], w[g * og:(g + 1) * og]
        for oh in range(ho):
            rows = oh * sh + dh * np.arange(kh)
            for ow in range(wo):
                cols = ow * sw + dw * np.arange(kw)
                win = xg[:, :, rows][:, :, :, cols]                       # [B, cg, kh, kw]
                y[:, g * og:(g + 1) * og, oh, ow] = np.einsum("bckl,ockl->bo", win, wg)
    if bias is not None:
        y += np.asarray(bias, np.float64)[None, :, None, None]
    return y.astype(np.float32)
