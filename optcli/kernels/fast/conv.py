"""Fast conv2d (torch semantics): im2col as strided views, one BLAS matmul per batch block.

    windows  [G, Cg, kh, kw, B, ...]   a view of (padded) x: no copy
    col      [G, Cg*kh*kw, n*...]      one batch block of the windows, copied: the im2col,
                                       sized to stay in L2 and to keep the matmul on one
                                       BLAS thread (see `_images_per_block`)
    y_block  [G, O/G, n*...]           = weight[G, O/G, Cg*kh*kw] @ col

The K order (Cg, kh, kw) is the weight's own memory order, so the weight is never copied.

Stride-1 convs use *row windows*: every output row is computed over the full padded width
Wp instead of Wo, so for fixed (c, i, j, b) the window is one contiguous run of Ho*Wp
elements (row oh+i, column ow+j sits at (oh+i)*Wp + ow + j) and the im2col copy runs at
memcpy speed; the kw-1 garbage columns per row are dropped when the block is written out.
That costs Wp/Wo extra matmul work, so it is used only when Wp <= 1.5 Wo (and for 1x1
convs over dense input the windows need no copy at all). Strided convs copy exact windows.

The output is written channel-major, y[O, B, Ho, Wo] (that is the matmul's natural layout),
and returned as the NCHW view y.transpose(1, 0, 2, 3): relu, pooling and the next conv read
it through strides, and nothing pays for a transpose copy.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Callable, Iterator, NamedTuple

import numpy as np

from optcli.kernels.fast.blas import single_threaded
from optcli.kernels.fast.blocks import spans
from optcli.kernels.fast.windows import key, strided
from optcli.kernels.reference.contract import check_conv, pair, window_out

_CONV_BLOCK = 1 << 17       # im2col elements per batch block (512 KB)
_GEMM_SINGLE = 1 << 19      # OpenBLAS threads a GEMM once M*N*K >= 2 * 65536 * 4
_MAX_ROW_WASTE = 1.5        # row windows only when Wp / Wo is at most this


class _Windows(NamedTuple):
    """How to view x[B, C, H, W] as conv windows; a pure function of shapes and attributes."""

    pad: tuple | None            # (buffer size, padded size, buffer shape, channel-major?,
                                 #  interior index)
    shape: tuple[int, ...]       # [G, Cg, kh, kw, B, Ho*Wp] (row windows) or [..., B, Ho, Wo]
    strides: tuple[int, ...]     # bytes, in the padded buffer (or in x when pad is None)
    width: int                   # row width of the GEMM output: Wp (row windows) or Wo


def _padded_strides(B, C, hp, wp, channel_major) -> tuple[int, int, int, int]:
    """Strides (B, C, H, W order) of the padded copy, which keeps x's axis order in memory."""
    return (hp * wp * 4, B * hp * wp * 4, wp * 4, 4) if channel_major else \
        (C * hp * wp * 4, hp * wp * 4, wp * 4, 4)


def _windows_plan(xshape, xstrides, k, s, p, d, groups, out_hw, rows) -> _Windows:
    """Row windows (stride 1: contiguous runs of Ho*Wp, `slack` elements read past the end)
    or exact windows [.., B, Ho, Wo]: x_padded[b, g*Cg + c, s*oh + d*i, s*ow + d*j]."""
    B, C, H, W = xshape
    hp, wp = H + 2 * p[0], W + 2 * p[1]
    slack = d[1] * (k[1] - 1) if rows else 0
    dense_rows = xstrides[3] == 4 and xstrides[2] == 4 * W
    pad = None
    if p != (0, 0) or (rows and (slack or not dense_rows)):
        channel_major = xstrides[1] > xstrides[0] and B > 1
        shape = (C, B, hp, wp) if channel_major else (B, C, hp, wp)
        inner = (slice(None), slice(None), slice(p[0], p[0] + H), slice(p[1], p[1] + W))
        pad = (B * C * hp * wp + slack, B * C * hp * wp, shape, channel_major, inner)
        xstrides = _padded_strides(B, C, hp, wp, channel_major)
    sB, sC, sH, sW = xstrides
    cg = C // groups
    head, hs = (groups, cg, k[0], k[1], B), (sC * cg, sC, sH * d[0], sW * d[1], sB)
    if rows:
        return _Windows(pad, head + (out_hw[0] * wp,), hs + (sW,), wp)
    return _Windows(pad, head + out_hw, hs + (sH * s[0], sW * s[1]), out_hw[1])


def windows(x: np.ndarray, plan: _Windows) -> np.ndarray:
    """The window view of x, zero-padded into a fresh buffer when the plan says. Windows
    overlap in memory: nothing may write through this view (read-only unless private)."""
    if plan.pad is None:
        return strided(x, plan.shape, plan.strides)
    size, n, shape, channel_major, inner = plan.pad
    flat = np.zeros(size, np.float32)
    buf = flat[:n].reshape(shape)
    (buf.transpose(1, 0, 2, 3) if channel_major else buf)[inner] = x
    return np.ndarray(plan.shape, np.float32, flat, 0, plan.strides)   # private: no flag set


def _images_per_block(gemm_per_image: int, col_per_image: int) -> int:
    """Images per block: the im2col block fits _CONV_BLOCK and, unless BLAS is limited to one
    thread, each block's GEMM stays under OpenBLAS's threading threshold when one image allows
    it. Small 2-thread GEMMs cost a thread handoff each, and milliseconds when the other core
    is busy (measured: LeNet-5's second conv took 340 ms instead of 3.5 ms with 6-image blocks
    under load); on one thread that cap would only add Python overhead per block."""
    step = max(1, _CONV_BLOCK // col_per_image)
    if gemm_per_image < _GEMM_SINGLE and not single_threaded():
        step = min(step, (_GEMM_SINGLE - 1) // gemm_per_image)
    return step


def _gemm_blocks(win, wk, out_hw, width) -> Iterator[tuple[slice, np.ndarray]]:
    """(batch slice, y[O, n, Ho, width]) per block of images, the GEMM without bias, from
    windows [G, Cg, kh, kw, B, ...] whose rows are `width` wide (columns from Wo on are
    row-window garbage). A lone block is a fresh array; otherwise blocks reuse one buffer."""
    G, og, K = wk.shape
    B, ho = win.shape[4], out_hw[0]
    per_image = ho * width
    step = B if B <= 1 else _images_per_block(og * K * per_image, K * per_image)
    if step >= B:                       # one block (small batches): no buffers, no loop
        out = np.matmul(wk, win.reshape(G, K, -1))
        yield slice(0, B), out.reshape(G * og, B, ho, width)
        return
    col_buf = np.empty(G * K * step * per_image, np.float32)   # reused: stays in L2
    out_buf = np.empty(G * og * step * per_image, np.float32)
    for sl in spans(B, 1, step):
        block = win[:, :, :, :, sl]
        col = col_buf[:block.size].reshape(block.shape)
        np.copyto(col, block)                                        # im2col: the one copy
        n = block.shape[4]
        out = out_buf[:G * og * n * per_image].reshape(G, og, -1)
        np.matmul(wk, col.reshape(G, K, -1), out=out)                # [G, O/G, n*Ho*width]
        yield sl, out.reshape(G * og, n, ho, width)


class _Plan(NamedTuple):
    out_hw: tuple[int, int]
    wk_shape: tuple[int, int, int]      # the weight as [G, O/G, Cg*kh*kw]
    windows: _Windows


@lru_cache(maxsize=256)
def conv_plan(xshape, xstrides, wshape, bshape, stride, padding, dilation, groups) -> _Plan:
    """Check a conv and work out everything that follows from shapes and attributes. Pure, so
    cached: batch-1 inference calls a conv thousands of times with the same shapes, and this
    Python work would cost as much as the convolution itself."""
    check_conv(*(None if sh is None else np.broadcast_to(np.float32(0), sh)   # shape only
                 for sh in (xshape, wshape, bshape)), groups)
    (co, cg, kh, kw), (h, w) = wshape, xshape[2:]
    s, p, d = pair(stride), pair(padding), pair(dilation)
    out_hw = (window_out("conv2d", h, kh, s[0], p[0], d[0]),
              window_out("conv2d", w, kw, s[1], p[1], d[1]))
    rows = s == (1, 1) and w + 2 * p[1] <= _MAX_ROW_WASTE * out_hw[1]
    windows = _windows_plan(xshape, xstrides, (kh, kw), s, p, d, groups, out_hw, rows)
    return _Plan(out_hw, (groups, co // groups, cg * kh * kw), windows)


def conv_blocks(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None, stride=1,
                padding=0, dilation=1, groups: int = 1):
    """Check a conv and plan it: ((Ho, Wo), blocks), where `blocks` yields (batch slice,
    y[O, n, Ho, width]) for x[B, C, H, W] * weight[O, C/groups, kh, kw], channel-major, rows
    width >= Wo wide, bias not yet added. Fused kernels (`fused.py`) finish each block while
    it is in cache."""
    x = np.asarray(x, np.float32)
    plan = conv_plan(x.shape, x.strides, np.shape(weight),
                     None if bias is None else np.shape(bias), key(stride), key(padding),
                     key(dilation), groups)
    wk = np.asarray(weight, np.float32).reshape(plan.wk_shape)
    win = windows(x, plan.windows)
    return plan.out_hw, _gemm_blocks(win, wk, plan.out_hw, plan.windows.width)


def add_bias(y: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    """y[O, ...] += bias[O] in place on a C-contiguous channel-major block (as 2-D: a 4-D
    broadcast add costs 2x more)."""
    if bias is not None:
        y2 = y.reshape(y.shape[0], -1)
        y2 += bias[:, None]
    return y


def gather(blocks, B: int, out_hw: tuple[int, int], bias: np.ndarray | None,
           finish: Callable[[np.ndarray], None] | None = None) -> np.ndarray:
    """The NCHW view y[B, O, Ho, Wo] of channel-major blocks, each given its bias and passed
    to `finish(block)` (in place, e.g. relu) while it is in cache."""
    y = None
    for sl, blk in blocks:
        add_bias(blk, bias)
        if finish is not None:
            finish(blk)
        if sl.stop - sl.start == B:     # the lone, fresh block: no copy unless it has garbage
            y = blk if blk.shape[3] == out_hw[1] else np.ascontiguousarray(blk[..., :out_hw[1]])
            break
        if y is None:
            y = np.empty((blk.shape[0], B) + out_hw, np.float32)
        y[:, sl] = blk[..., :out_hw[1]]
    return y.transpose(1, 0, 2, 3)


def conv2d(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None, stride=1,
           padding=0, dilation=1, groups: int = 1) -> np.ndarray:
    """x[B, C, H, W] * weight[O, C/groups, kh, kw] -> y[B, O, Ho, Wo]."""
    out_hw, blocks = conv_blocks(x, weight, bias, stride, padding, dilation, groups)
    return gather(blocks, x.shape[0], out_hw, bias)
