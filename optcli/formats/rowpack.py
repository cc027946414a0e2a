"""Row-wise bit-packing of low-bit integer codes: a matrix [rows, cols] of unsigned codes of
`bits` bits becomes uint8 [rows, ceil(cols * bits / 8)].

Each row is one stream in formats/bitpack.py's layout (code i of the row occupies bits
[i * bits, (i + 1) * bits), most significant bit first; bytes filled MSB first), padded with
zero bits to a whole byte, so a row starts on a byte boundary (a kernel can address row r
without decoding the rows before it). For 4 bits, code 2j is the high nibble of byte j and
code 2j + 1 the low nibble; for 2 bits, byte j holds codes 4j..4j+3 from the top bits down.

Widths that divide 8 (1, 2, 4, 8) use shifts on [rows, bytes, codes-per-byte] views; 3, 5, 6
and 7 go through a bit matrix [rows, cols, bits], in chunks of rows to bound the temporary.
"""

from __future__ import annotations

import numpy as np

CHUNK_BITS = 1 << 24          # at most ~16 M temporary bit entries (16 MB) per chunk


def row_nbytes(cols: int, bits: int) -> int:
    """Bytes one packed row of `cols` codes takes."""
    return (cols * bits + 7) // 8


def pack_rows(codes: np.ndarray, bits: int) -> np.ndarray:
    """codes uint8 [rows, cols], every value < 2**bits -> uint8 [rows, row_nbytes(cols, bits)]."""
    _check(bits)
    codes = np.ascontiguousarray(codes, np.uint8)
    rows, cols = codes.shape
    if cols and int(codes.max(initial=0)) >= (1 << bits):
        raise ValueError(f"a code is >= 2**{bits}")
    if 8 % bits == 0:
        per = 8 // bits                                        # codes per byte
        nb = row_nbytes(cols, bits)
        padded = np.zeros((rows, nb * per), np.uint8)
        padded[:, :cols] = codes
        shifts = np.arange(8 - bits, -1, -bits, dtype=np.uint8)   # first code in the top bits
        return np.bitwise_or.reduce(padded.reshape(rows, nb, per) << shifts, axis=2)
    out = np.empty((rows, row_nbytes(cols, bits)), np.uint8)
    for r0, r1 in _chunks(rows, cols * 8):
        m = np.unpackbits(codes[r0:r1, :, None], axis=2)[:, :, 8 - bits:]   # [r, cols, bits]
        out[r0:r1] = np.packbits(m.reshape(r1 - r0, cols * bits), axis=1)
    return out


def unpack_rows(packed: np.ndarray, bits: int, cols: int) -> np.ndarray:
    """uint8 [rows, row_nbytes(cols, bits)] -> codes uint8 [rows, cols]."""
    _check(bits)
    rows = packed.shape[0]
    if 8 % bits == 0:
        shifts = np.arange(8 - bits, -1, -bits, dtype=np.uint8)     # [8 // bits] per byte
        mask = np.uint8((1 << bits) - 1)
        u = (packed[:, :, None] >> shifts) & mask                   # [rows, nb, per]
        return np.ascontiguousarray(u.reshape(rows, -1)[:, :cols])
    out = np.empty((rows, cols), np.uint8)
    for r0, r1 in _chunks(rows, cols * 8):
        m = np.zeros((r1 - r0, cols, 8), np.uint8)                  # left-padded bit matrix
        m[:, :, 8 - bits:] = np.unpackbits(packed[r0:r1], axis=1,
                                           count=cols * bits).reshape(r1 - r0, cols, bits)
        out[r0:r1] = np.packbits(m, axis=2)[:, :, 0]
    return out


def _chunks(rows: int, bits_per_row: int):
    step = max(1, CHUNK_BITS // max(bits_per_row, 1))
    for r0 in range(0, rows, step):
        yield r0, min(rows, r0 + step)


def _check(bits: int) -> None:
    if not (isinstance(bits, (int, np.integer)) and 1 <= bits <= 8):
        raise ValueError(f"row packing takes 1..8 bits, got {bits!r}")
