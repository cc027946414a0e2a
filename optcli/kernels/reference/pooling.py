"""Reference pooling: one window at a time over x[B, C, H, W] (floor mode, as PyTorch/ONNX).

maxpool pads with -inf (padding never wins a max); avgpool pads with zeros and divides by the
full window (count_include_pad=True, PyTorch's default) or by the number of real elements in
the window (False). `pool_geometry` keeps padding <= half the window, so no window is all padding.
"""

from __future__ import annotations

import numpy as np

from optcli.kernels.reference.contract import check_rank, pool_geometry


def _windows(op: str, x: np.ndarray, kernel, stride, padding, fill: float):
    """Yield (oh, ow, window[B, C, kh, kw], real[kh, kw]) for every output position."""
    (kh, kw), (sh, sw), (ph, pw), (ho, wo) = pool_geometry(op, x, kernel, stride, padding)
    B, C, H, W = x.shape
    xp = np.full((B, C, H + 2 * ph, W + 2 * pw), fill)
    xp[:, :, ph:ph + H, pw:pw + W] = x
    real = np.zeros((H + 2 * ph, W + 2 * pw), bool)              # True where x is not padding
    real[ph:ph + H, pw:pw + W] = True
    for oh in range(ho):
        for ow in range(wo):
            r, c = slice(oh * sh, oh * sh + kh), slice(ow * sw, ow * sw + kw)
            yield oh, ow, xp[:, :, r, c], real[r, c]


def _output(x: np.ndarray, kernel, stride, padding, op: str) -> np.ndarray:
    _, _, _, (ho, wo) = pool_geometry(op, x, kernel, stride, padding)
    return np.zeros(x.shape[:2] + (ho, wo))


def maxpool2d(x: np.ndarray, kernel, stride=None, padding=0) -> np.ndarray:
    y = _output(x, kernel, stride, padding, "maxpool2d")
    for oh, ow, win, _ in _windows("maxpool2d", x, kernel, stride, padding, -np.inf):
        y[:, :, oh, ow] = win.max(axis=(2, 3))
    return y.astype(np.float32)


def avgpool2d(x: np.ndarray, kernel, stride=None, padding=0,
              count_include_pad: bool = True) -> np.ndarray:
    y = _output(x, kernel, stride, padding, "avgpool2d")
    for oh, ow, win, real in _windows("avgpool2d", x, kernel, stride, padding, 0.0):
        count = real.size if count_include_pad else real.sum()
        y[:, :, oh, ow] = win.sum(axis=(2, 3)) / count
    return y.astype(np.float32)


def global_avgpool(x: np.ndarray) -> np.ndarray:
    """x[B, C, H, W] -> mean over H, W -> y[B, C]."""
    check_rank("global_avgpool", "x", x, 4, "[B, C, H, W]")
    return np.asarray(x, np.float64).mean(axis=(2, 3)).astype(np.float32)
