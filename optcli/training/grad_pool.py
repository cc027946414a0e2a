"""Forward and backward of maxpool2d, avgpool2d and global_avgpool over x[B, C, H, W].

Windows are strided views of the padded input, [B, C, Ho, Wo, kh, kw] (floor mode, padding
at most half the window, as the reference). maxpool routes each output gradient to the first
maximum of its window (PyTorch's choice at ties); avgpool spreads it evenly over the window,
divided by the full window or by its real (unpadded) elements. Backward adds kh*kw strided
slices into the padded gradient, then drops the padding.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.lib.stride_tricks import as_strided

from optcli.kernels.reference.contract import check_rank, pool_geometry


def _windows(xp: np.ndarray, k, s, out) -> np.ndarray:
    """A read-only view xp -> [B, C, Ho, Wo, kh, kw]."""
    sB, sC, sH, sW = xp.strides
    return as_strided(xp, xp.shape[:2] + tuple(out) + tuple(k),
                      (sB, sC, sH * s[0], sW * s[1], sH, sW), writeable=False)


def _pad(x: np.ndarray, p, fill: float) -> np.ndarray:
    return np.pad(x, ((0, 0), (0, 0), (p[0], p[0]), (p[1], p[1])), constant_values=fill)


def _scatter(dwin: np.ndarray, pshape, k, s, p, out) -> np.ndarray:
    """The input gradient from per-window gradients dwin[B, C, Ho, Wo, kh, kw]."""
    dxp = np.zeros(pshape, dwin.dtype)
    for i in range(k[0]):
        for j in range(k[1]):
            dxp[:, :, i:i + s[0] * (out[0] - 1) + 1:s[0],
                j:j + s[1] * (out[1] - 1) + 1:s[1]] += dwin[..., i, j]
    return dxp[:, :, p[0]:pshape[2] - p[0], p[1]:pshape[3] - p[1]]


def maxpool2d_forward(inputs: dict[str, Any], attrs: dict[str, Any]):
    x = inputs["x"]
    k, s, p, out = pool_geometry("maxpool2d", x, attrs["kernel"], attrs["stride"],
                                 attrs["padding"])
    xp = _pad(x, p, -np.inf)
    win = _windows(xp, k, s, out).reshape(x.shape[:2] + tuple(out) + (-1,))
    arg = win.argmax(axis=-1)                                 # first max of each window
    y = np.take_along_axis(win, arg[..., None], axis=-1)[..., 0]
    return y, (xp.shape, arg, k, s, p, out)


def maxpool2d_backward(dy, saved, needs: frozenset[str]) -> dict[str, np.ndarray]:
    pshape, arg, k, s, p, out = saved
    dwin = np.zeros(dy.shape + (k[0] * k[1],), dy.dtype)
    np.put_along_axis(dwin, arg[..., None], dy[..., None], axis=-1)
    return {"x": _scatter(dwin.reshape(dy.shape + tuple(k)), pshape, k, s, p, out)}


def _counts(x, k, s, p, out, include_pad: bool, dtype) -> np.ndarray:
    """Divisor of every output position: the window size, or its real elements [Ho, Wo]."""
    if include_pad:
        return np.full(out, k[0] * k[1], dtype)
    real = _pad(np.ones((1, 1) + x.shape[2:], dtype), p, 0.0)
    return _windows(real, k, s, out).sum(axis=(-1, -2))[0, 0]


def avgpool2d_forward(inputs: dict[str, Any], attrs: dict[str, Any]):
    x = inputs["x"]
    k, s, p, out = pool_geometry("avgpool2d", x, attrs["kernel"], attrs["stride"],
                                 attrs["padding"])
    xp = _pad(x, p, 0.0)
    count = _counts(x, k, s, p, out, attrs["count_include_pad"], x.dtype)
    y = _windows(xp, k, s, out).sum(axis=(-1, -2)) / count
    return y, (xp.shape, count, k, s, p, out)


def avgpool2d_backward(dy, saved, needs: frozenset[str]) -> dict[str, np.ndarray]:
    pshape, count, k, s, p, out = saved
    share = (dy / count)[..., None, None]
    dwin = np.broadcast_to(share, dy.shape + tuple(k))
    return {"x": _scatter(dwin, pshape, k, s, p, out)}


def global_avgpool_forward(inputs: dict[str, Any], attrs: dict[str, Any]):
    x = inputs["x"]
    check_rank("global_avgpool", "x", x, 4, "[B, C, H, W]")
    return x.mean(axis=(2, 3)), x.shape


def global_avgpool_backward(dy, shape, needs: frozenset[str]) -> dict[str, np.ndarray]:
    scale = 1.0 / (shape[2] * shape[3])
    return {"x": np.broadcast_to((dy * scale)[:, :, None, None], shape).copy()}
