"""Forward and backward of linear and conv2d (torch semantics, as the reference kernels).

linear:  y[N, O] = x[N, I] @ W[O, I]^T + b        (leading dims of x flattened into N)
         dx = dy @ W,  dW = dy^T @ x,  db = sum_N dy
conv2d:  im2col. col[B, G, Cg*kh*kw, Ho*Wo] gathers every window of the zero-padded input, so
         y_g = W_g[Og, Cg*kh*kw] @ col_g is one matmul per group; backward is the transposed
         matmuls plus col2im: kh*kw strided adds of dcol into the padded input gradient.
Every function keeps its input's float dtype (float32 in training, float64 in gradient checks).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.lib.stride_tricks import as_strided

from optcli.kernels.reference.contract import check_conv, check_linear, pair, window_out


def linear_forward(inputs: dict[str, Any], attrs: dict[str, Any]):
    x, w, b = inputs["x"], inputs["weight"], inputs.get("bias")
    check_linear(x, w, b)
    y = x @ w.T
    if b is not None:
        y = y + b
    return y, (x, w)


def linear_backward(dy: np.ndarray, saved, needs: frozenset[str]) -> dict[str, np.ndarray]:
    x, w = saved
    dy2 = dy.reshape(-1, dy.shape[-1])                       # [N, O]
    out = {}
    if "x" in needs:
        out["x"] = (dy2 @ w).reshape(x.shape)
    if "weight" in needs:
        out["weight"] = dy2.T @ x.reshape(-1, x.shape[-1])   # [O, I]
    if "bias" in needs:
        out["bias"] = dy2.sum(axis=0)
    return out


def _geometry(x, w, attrs):
    (sh, sw), (ph, pw), (dh, dw) = (pair(attrs["stride"]), pair(attrs["padding"]),
                                    pair(attrs["dilation"]))
    ho = window_out("conv2d", x.shape[2], w.shape[2], sh, ph, dh)
    wo = window_out("conv2d", x.shape[3], w.shape[3], sw, pw, dw)
    return (sh, sw), (ph, pw), (dh, dw), (ho, wo)


def _im2col(xp: np.ndarray, k, s, d, out, groups: int) -> np.ndarray:
    """col[G, Cg*kh*kw, B*Ho*Wo] from the padded input xp[B, C, Hp, Wp] (one copy)."""
    B, C, _, _ = xp.shape
    sB, sC, sH, sW = xp.strides
    cg = C // groups
    view = as_strided(xp, (groups, cg, k[0], k[1], B, out[0], out[1]),
                      (sC * cg, sC, sH * d[0], sW * d[1], sB, sH * s[0], sW * s[1]),
                      writeable=False)
    return view.reshape(groups, cg * k[0] * k[1], B * out[0] * out[1])


def conv2d_forward(inputs: dict[str, Any], attrs: dict[str, Any]):
    x, w, b = inputs["x"], inputs["weight"], inputs.get("bias")
    groups = attrs["groups"]
    check_conv(x, w, b, groups)
    s, p, d, out = _geometry(x, w, attrs)
    B, n_out = x.shape[0], w.shape[0]
    xp = np.pad(x, ((0, 0), (0, 0), (p[0], p[0]), (p[1], p[1])))
    col = _im2col(np.ascontiguousarray(xp), w.shape[2:], s, d, out, groups)
    wg = w.reshape(groups, n_out // groups, -1)                   # [G, Og, Cg*kh*kw]
    y = (wg @ col).reshape(n_out, B, out[0], out[1]).transpose(1, 0, 2, 3)
    if b is not None:
        y = y + b[None, :, None, None]
    return np.ascontiguousarray(y), (x.shape, xp.shape, w, col, s, p, d, out, groups)


def conv2d_backward(dy: np.ndarray, saved, needs: frozenset[str]) -> dict[str, np.ndarray]:
    xshape, pshape, w, col, s, p, d, out, groups = saved
    n_out = w.shape[0]
    # dy[B, O, Ho, Wo] -> [G, Og, B*Ho*Wo], the layout of the forward matmul's output
    dyg = dy.transpose(1, 0, 2, 3).reshape(groups, n_out // groups, -1)
    res = {}
    if "weight" in needs:
        res["weight"] = (dyg @ col.transpose(0, 2, 1)).reshape(w.shape)
    if "bias" in needs:
        res["bias"] = dy.sum(axis=(0, 2, 3))
    if "x" in needs:
        dcol = w.reshape(groups, n_out // groups, -1).transpose(0, 2, 1) @ dyg
        res["x"] = _col2im(dcol, xshape, pshape, w.shape, s, p, d, out)
    return res


def _col2im(dcol, xshape, pshape, wshape, s, p, d, out) -> np.ndarray:
    """Scatter-add dcol[G, Cg*kh*kw, B*Ho*Wo] back onto x: one strided add per (i, j)."""
    B, C, H, W = xshape
    kh, kw = wshape[2:]
    dcol = dcol.reshape(C, kh, kw, B, out[0], out[1])
    dxp = np.zeros(pshape, dcol.dtype)
    for i in range(kh):
        for j in range(kw):
            r0, c0 = i * d[0], j * d[1]
            dxp[:, :, r0:r0 + s[0] * (out[0] - 1) + 1:s[0],
                c0:c0 + s[1] * (out[1] - 1) + 1:s[1]] += dcol[:, i, j].transpose(1, 0, 2, 3)
    return dxp[:, :, p[0]:p[0] + H, p[1]:p[1] + W]
