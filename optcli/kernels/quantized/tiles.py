"""Tiled decode + BLAS: the rows of a packed weight decoded a tile at a time into one reused
float32 buffer, each tile multiplied by BLAS while it is still in cache (L3).

    y[B, r0:r1] = x[B, cols] @ tile[r1 - r0, cols].T       tile = decode(W[r0:r1])

Memory never holds more than one tile of float32. With numba the tile is decoded by jit.py
(its large-batch path, where GEMM work amortises the decode); without numba by
`decode_rows_numpy` below, which takes several NumPy passes per tile (shift, mask,
cast, subtract, multiply) and so stays slower than float32 at batch 1: the runtime's plan uses
it only where the measured decision table says so (kernels/quantized/decision.py).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from optcli.kernels.quantized.layout import PackedWeight

TILE_BYTES = 16 << 20       # float32 tile: 16 MB. Fewer, larger GEMMs beat L2-sized tiles here
                            # (4096^2 int8 at batch 256, 2 threads: 1 MB tiles 61 ms, 4 MB 53,
                            # 16 MB 51; float32 47); a layer smaller than this decodes whole


def tiled_linear(x: np.ndarray, rows: int, decode: Callable[[int, np.ndarray], None],
                 tile_bytes: int | None = None) -> np.ndarray:
    """y[B, rows] = x[B, k] @ W.T, W[rows, k] decoded tile by tile with decode(r0, tile) (k:
    the columns in the order the decoder writes them, which x must follow)."""
    n = max(1, min(rows, (tile_bytes or TILE_BYTES) // (4 * x.shape[1])))
    tile = np.empty((n, x.shape[1]), np.float32)
    y = np.empty((x.shape[0], rows), np.float32)
    for r0 in range(0, rows, n):
        t = tile[:min(n, rows - r0)]
        decode(r0, t)
        np.matmul(x, t.T, out=y[:, r0:r0 + t.shape[0]])   # BLAS writes the column block
    return y                                               # in place (row stride = rows)


def linear_numpy(x: np.ndarray, w: PackedWeight) -> np.ndarray:
    """y[B, rows] = x[B, cols] @ W.T, tiles decoded by NumPy (single-threaded, like NumPy's
    element-wise work; BLAS takes its threads)."""
    return tiled_linear(x, w.shape[0], lambda r0, tile: decode_rows_numpy(w, r0, tile))


def decode_rows_numpy(w: PackedWeight, r0: int, tile: np.ndarray) -> None:
    """tile[i] = decoded row r0 + i of w, in element order."""
    n, cols = tile.shape
    tile[...] = _codes(w.codes[r0:r0 + n], w.bits, cols)
    scale = w.scale[r0:r0 + n] if w.scale.shape[0] > 1 else w.scale      # [n | 1, G | 1]
    zero = (w.zero[r0:r0 + n] if w.zero.shape[0] > 1 else w.zero).astype(np.float32)
    if scale.shape[1] == zero.shape[1] == 1:
        tile -= zero
        tile *= scale
    elif cols % w.group == 0:                                   # groups as a view [n, G, g]
        grouped = tile.reshape(n, -1, w.group)
        grouped -= zero[:, :, None]
        grouped *= scale[:, :, None]
    else:                                                       # a partial last group
        per_col = np.arange(cols) // w.group
        tile -= zero[:, per_col] if zero.shape[1] > 1 else zero
        tile *= scale[:, per_col] if scale.shape[1] > 1 else scale


def _codes(codes: np.ndarray, bits: int, cols: int) -> np.ndarray:
    """Packed rows [n, row_bytes] -> codes [n, cols] (uint8, or int8 for int8 codes)."""
    if bits == 8:
        return codes[:, :cols]
    mask = np.uint8((1 << bits) - 1)
    if 8 % bits == 0:                       # 2 and 4 bits: whole codes per byte, MSB first
        shifts = np.arange(8 - bits, -1, -bits, dtype=np.uint8)
        return ((codes[:, :, None] >> shifts) & mask).reshape(codes.shape[0], -1)[:, :cols]
    stream = np.unpackbits(codes, axis=1)[:, :cols * bits].reshape(codes.shape[0], cols, bits)
    padded = np.zeros((codes.shape[0], cols, 8), np.uint8)      # left-pad each code to a byte
    padded[:, :, 8 - bits:] = stream
    return np.packbits(padded, axis=2)[:, :, 0]
