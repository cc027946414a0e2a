"""Sliding-window views over images x[B, C, H, W] for convolution and pooling, without copies.

Fast kernels keep whatever memory layout their input has: conv2d returns NCHW-shaped views of
channel-major [C, B, H, W] memory (that layout comes straight out of its matmul), and relu,
pooling and the next conv read it through strides. Padding copies into a fresh buffer in the
same axis order as x, so the copy streams through memory.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided


def key(attr):
    """A window attribute (kernel, stride, padding) as a hashable cache key: JSON gives lists.
    Geometry is a pure function of shapes and attributes, so kernels cache it; batch-1
    inference calls each kernel with the same shapes thousands of times."""
    return tuple(attr) if isinstance(attr, list) else attr


def pad(x: np.ndarray, ph: int, pw: int, fill: float,
        slack: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(xp, flat): x[B, C, H, W] with `fill` added around H and W, in x's axis order in memory,
    and the flat buffer holding it followed by `slack` spare elements (see conv's row windows)."""
    B, C, H, W = x.shape
    channel_major = x.strides[1] > x.strides[0] and B > 1
    shape = (C, B, H + 2 * ph, W + 2 * pw) if channel_major else (B, C, H + 2 * ph, W + 2 * pw)
    n = shape[0] * shape[1] * shape[2] * shape[3]
    flat = np.zeros(n + slack, np.float32) if fill == 0 else np.full(n + slack, fill, np.float32)
    buf = flat[:n].reshape(shape)
    xp = buf.transpose(1, 0, 2, 3) if channel_major else buf
    xp[:, :, ph:ph + H, pw:pw + W] = x
    return xp, flat


def _dense_base(x: np.ndarray) -> np.ndarray | None:
    """x itself or a transpose of it that is C-contiguous (same first byte), else None."""
    if x.flags.c_contiguous:
        return x
    xt = x.transpose(np.argsort(x.strides)[::-1])
    return xt if xt.flags.c_contiguous else None


def strided(x: np.ndarray, shape: tuple[int, ...], strides: tuple[int, ...]) -> np.ndarray:
    """A read-only view of x's memory (from x's first element) with the given shape and strides.

    `np.ndarray(buffer=...)` costs ~0.4 us against ~5 us for `as_strided` (which builds an
    `__array_interface__` object), and batch-1 inference calls this once per conv.
    """
    base = _dense_base(x)
    if base is None:
        return as_strided(x, shape, strides, writeable=False)
    view = np.ndarray(shape, x.dtype, base, 0, strides)
    view.flags.writeable = False
    return view

