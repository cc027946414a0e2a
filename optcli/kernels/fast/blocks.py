"""Cache blocking for multi-pass NumPy code.

A kernel that makes several passes over an array (GELU's polynomial, softmax's max/exp/sum,
layernorm's mean/var/scale) runs much faster when each pass touches a block that is still in
L2 cache: one 256 KB block costs ~0.1 ns per element per pass, while whole-array passes over a
200 MB FFN activation stream from DRAM every time.
"""

from __future__ import annotations

from typing import Callable, Iterator

import numpy as np

BLOCK = 1 << 16   # float32 elements per block: 256 KB, leaves L2 room for 2-3 temporaries


def spans(n: int, per: int = 1, budget: int = BLOCK) -> Iterator[slice]:
    """Slices over n items of `per` elements each, about `budget` elements per slice (>= 1 item)."""
    step = max(1, budget // max(per, 1))
    for i in range(0, n, step):
        yield slice(i, min(i + step, n))


def dense_like(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x, out, flat views) for an elementwise kernel: x as float32, an output with x's memory
    layout, and both flattened in memory order. A conv output in channel-major memory (a
    transposed view) is used as is, not copied back to C order."""
    x = np.asarray(x, np.float32)
    out = np.empty_like(x)                      # order 'K': same axis order as x, but dense
    if out.strides != x.strides:                # x has gaps (a slice): make it dense first
        x = np.ascontiguousarray(x)
        out = np.empty_like(x)
    return x, out, (x.ravel(order="K"), out.ravel(order="K"))


def blockwise(x: np.ndarray, block_fn: Callable[..., None], n_scratch: int) -> np.ndarray:
    """Apply `block_fn(x_block, out_block, *scratch)` over L2-sized flat blocks of x."""
    x, out, (xf, of) = dense_like(x)
    scratch = np.empty((n_scratch, min(xf.size, BLOCK)), np.float32)
    for sl in spans(xf.size):
        n = sl.stop - sl.start
        block_fn(xf[sl], of[sl], *scratch[:, :n])
    return out
