"""numba kernels for packed codes of any width 2..8 and any group size, in element order.

The general path behind jit.py's byte-aligned one: codes that straddle bytes (3, 5, 6, 7 bits)
or groups that split a byte. Each row is unpacked into an L1 buffer first (8 codes at a time
from the `bits` bytes they fill), then scaled per group (`_decode_row`);
`rows` dots the buffer with every input, `decode_rows` fills a tile for BLAS.
"""

from __future__ import annotations

import numpy as np
from numba import njit

_FLAGS = dict(cache=True, fastmath=True, nogil=True)      # nogil: blocks run in threads


@njit(**_FLAGS)
def _unpack_any(row, bits, cols, out):
    """Codes of any width 1..8. Every 8 codes fill exactly `bits` bytes (a unit): each unit is
    read as one big-endian integer and split by shifts that are the same for every unit (3x
    faster than locating each code alone: 4096 3-bit codes in 2.2 us against 6.5 us); the
    last cols % 8 codes through a 16-bit big-endian window wherever they start."""
    mask, n = (1 << bits) - 1, row.shape[0]
    units = cols >> 3
    for u in range(units):
        v = np.int64(0)
        for i in range(bits):
            v = (v << 8) | np.int64(row[u * bits + i])
        o = 8 * u
        for p in range(8):
            out[o + p] = (v >> ((7 - p) * bits)) & mask
    for k in range(8 * units, cols):
        pos = k * bits
        j = pos >> 3
        w = np.int32(row[j]) << 8
        if j + 1 < n:
            w |= np.int32(row[j + 1])
        out[k] = (w >> (16 - bits - (pos & 7))) & mask


@njit(**_FLAGS)
def _unpack_row(row, bits, cols, out):
    """row: one packed row (uint8 bit stream, or int8 codes when bits == 8) -> out[:cols]."""
    if bits == 8:
        for k in range(cols):
            out[k] = row[k]
    elif bits == 4:                       # code 2j: high nibble of byte j, 2j + 1: low nibble
        half = cols >> 1
        for j in range(half):
            b = np.int32(row[j])
            out[2 * j] = b >> 4
            out[2 * j + 1] = b & 15
        if cols & 1:
            out[cols - 1] = np.int32(row[half]) >> 4
    elif bits == 2:
        quarter = cols >> 2
        for j in range(quarter):
            b = np.int32(row[j])
            out[4 * j] = b >> 6
            out[4 * j + 1] = (b >> 4) & 3
            out[4 * j + 2] = (b >> 2) & 3
            out[4 * j + 3] = b & 3
        for k in range(4 * quarter, cols):
            out[k] = (np.int32(row[k >> 2]) >> (6 - 2 * (k & 3))) & 3
    else:
        _unpack_any(row, bits, cols, out)


@njit(**_FLAGS)
def _decode_row(codes, scale, zero, bits, group, r, out):
    """out[:cols] = (code[r, k] - zero[r, g]) * scale[r, g], g = k // group (a row or column
    count of 1 in scale/zero broadcasts)."""
    cols = out.shape[0]
    _unpack_row(codes[r], bits, cols, out)
    srow = scale[r if scale.shape[0] > 1 else 0]
    zrow = zero[r if zero.shape[0] > 1 else 0]
    for g in range((cols + group - 1) // group):
        s = srow[g if srow.shape[0] > 1 else 0]
        z = np.float32(zrow[g if zrow.shape[0] > 1 else 0])
        seg = out[g * group:(g + 1) * group]   # a view: indices from 0 let LLVM vectorise
        for k in range(seg.shape[0]):
            seg[k] = (seg[k] - z) * s


@njit(**_FLAGS)
def rows(x, codes, scale, zero, bits, group, r0, r1, out):
    """out[:, r0:r1] = x[B, cols] @ W[r0:r1].T, each row decoded once into an L1 buffer and
    dotted with every input there."""
    buf = np.empty(x.shape[1], np.float32)
    for r in range(r0, r1):
        _decode_row(codes, scale, zero, bits, group, r, buf)
        for b in range(x.shape[0]):
            xb = x[b]
            acc = np.float32(0.0)
            for k in range(buf.shape[0]):
                acc += buf[k] * xb[k]
            out[b, r] = acc


@njit(**_FLAGS)
def decode_rows(codes, scale, zero, bits, group, r0, tile):
    """tile[i, :] = decoded row r0 + i, in element order."""
    for i in range(tile.shape[0]):
        _decode_row(codes, scale, zero, bits, group, r0 + i, tile[i])
