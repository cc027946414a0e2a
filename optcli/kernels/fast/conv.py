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

import numpy as np

from optcli.kernels.fast.blocks import spans
from optcli.kernels.fast.windows import pad, strided
from optcli.kernels.reference.contract import check_conv, pair, window_out

_CONV_BLOCK = 1 << 17       # im2col elements per batch block (512 KB)
_GEMM_SINGLE = 1 << 19      # OpenBLAS threads a GEMM once M*N*K >= 2 * 65536 * 4
_MAX_ROW_WASTE = 1.5        # row windows only when Wp / Wo is at most this


def _row_windows(x, p, d, k, groups, out_hw) -> tuple[np.ndarray, int]:
    """Stride-1 windows [G, Cg, kh, kw, B, Ho*Wp] as contiguous row runs, and Wp."""
    B, C, H, W = x.shape
    wp, slack = W + 2 * p[1], d[1] * (k[1] - 1)     # the last run reads slack past the end
    if p == (0, 0) and slack == 0 and x.strides[3] == 4 and x.strides[2] == 4 * W:
        xp, base = x, x                              # 1x1 over dense planes: no copy at all
    else:
        xp, base = pad(x, p[0], p[1], 0.0, slack)
    sB, sC, sH, sW = xp.strides
    shape = (groups, C // groups, k[0], k[1], B, out_hw[0] * wp)
    return strided(base, shape, (sC * (C // groups), sC, sH * d[0], sW * d[1], sB, sW)), wp


def _exact_windows(x, p, s, d, k, groups, out_hw) -> tuple[np.ndarray, int]:
    """Windows [G, Cg, kh, kw, B, Ho, Wo]: element x_padded[b, g*Cg + c, s*oh + d*i, ...]."""
    B, C = x.shape[:2]
    xp = pad(x, p[0], p[1], 0.0)[0] if p != (0, 0) else x
    sB, sC, sH, sW = xp.strides
    shape = (groups, C // groups, k[0], k[1], B) + out_hw
    return strided(xp, shape, (sC * (C // groups), sC, sH * d[0], sW * d[1], sB,
                               sH * s[0], sW * s[1])), out_hw[1]


def _images_per_block(gemm_per_image: int, col_per_image: int) -> int:
    """Images per block: the im2col block fits _CONV_BLOCK, and each block's GEMM stays under
    OpenBLAS's threading threshold when one image allows it. Small 2-thread GEMMs cost a thread
    handoff each, and milliseconds when the other core is busy (measured: LeNet-5's second
    conv took 340 ms instead of 3.5 ms with 6-image blocks under load)."""
    step = max(1, _CONV_BLOCK // col_per_image)
    if gemm_per_image < _GEMM_SINGLE:
        step = min(step, (_GEMM_SINGLE - 1) // gemm_per_image)
    return step


def _matmul_blocks(win, wk, bias, out_hw, width) -> np.ndarray:
    """y[O, B, Ho, Wo] from windows [G, Cg, kh, kw, B, ...] whose rows are `width` wide."""
    G, og, K = wk.shape
    B, (ho, wo) = win.shape[4], out_hw
    per_image = ho * width
    bg = None if bias is None else np.asarray(bias, np.float32).reshape(G, og, 1)
    step = _images_per_block(og * K * per_image, K * per_image)
    if step >= B:                       # one block (small batches): no buffers, no loop
        out = np.matmul(wk, win.reshape(G, K, -1))
        if bg is not None:
            out += bg
        out = out.reshape(G * og, B, ho, width)
        return out if width == wo else np.ascontiguousarray(out[..., :wo])
    y = np.empty((G * og, B, ho, wo), np.float32)
    yg = y.reshape(G, og, B, ho, wo)
    col_buf = np.empty(G * K * step * per_image, np.float32)   # reused: stays in L2
    out_buf = np.empty(G * og * step * per_image, np.float32)
    for sl in spans(B, 1, step):
        block = win[:, :, :, :, sl]
        col = col_buf[:block.size].reshape(block.shape)
        np.copyto(col, block)                                        # im2col: the one copy
        out = out_buf[:G * og * block.shape[4] * per_image].reshape(G, og, -1)
        np.matmul(wk, col.reshape(G, K, -1), out=out)                # [G, O/G, n*Ho*width]
        if bg is not None:
            out += bg               # on the dense block: a 5-D broadcast add costs 2x more
        yg[:, :, sl] = out.reshape(G, og, -1, ho, width)[..., :wo]
    return y


def conv2d(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None, stride=1,
           padding=0, dilation=1, groups: int = 1) -> np.ndarray:
    """x[B, C, H, W] * weight[O, C/groups, kh, kw] -> y[B, O, Ho, Wo]."""
    check_conv(x, weight, bias, groups)
    s, p, d = pair(stride), pair(padding), pair(dilation)
    co, cg, kh, kw = weight.shape
    out_hw = (window_out("conv2d", x.shape[2], kh, s[0], p[0], d[0]),
              window_out("conv2d", x.shape[3], kw, s[1], p[1], d[1]))
    x = np.asarray(x, np.float32)
    wk = np.asarray(weight, np.float32).reshape(groups, co // groups, cg * kh * kw)
    if s == (1, 1) and x.shape[3] + 2 * p[1] <= _MAX_ROW_WASTE * out_hw[1]:
        win, width = _row_windows(x, p, d, (kh, kw), groups, out_hw)
    else:
        win, width = _exact_windows(x, p, s, d, (kh, kw), groups, out_hw)
    return _matmul_blocks(win, wk, bias, out_hw, width).transpose(1, 0, 2, 3)
