"""numba kernels for packed weights (numba is optional: `pip install 'optcli[fast]'`).

Byte-aligned codes (8, 4 and 2 bits, groups a whole number of bytes) are read in phase-major
order: phase p of byte j is code j * per_byte + p, and x is permuted the same way once per
call (`_phases`), so every loop reads and writes with stride 1 and LLVM vectorises it. Codes
are split from their byte in float32 lanes: byte -> float, then floor(byte / 2^k) (exact: a
byte and its power-of-two quotients are exact in float32). Integer shifts and masks would be
widened to int64 by numba's typing, halving the vector width (4 bits: 3x slower). Other widths
and groups take jit_any.py's element-order path.
Kernels work on a block of rows [r0, r1), serially and without the GIL, and threads.py runs
blocks on several threads:
- `_rows8`, `_rows4`, `_rows2`, `_rows3` (batch 1): y straight from the packed bytes, codes
  unpacked in registers, the zero point and scale applied once per group, not per weight. The
  weight is read once and packed: at batch 1 the product is bound by memory bandwidth, so
  reading 4 or 8 bits a weight instead of 32 is the gain, as long as unpacking keeps up. One
  function per width: a width branch inside the group loop kept LLVM from vectorising well
  (4-bit, groups of 128: 4.4 ms against 2.2 ms for 4096^2);
- `_rows_decoded` (batches 2..GEMV_MAX_BATCH): rows decoded to float32 in an L1 buffer in
  one pass ((code - zero) * scale), 4 at a time, then 4 dots per input in one pass over x:
  the codes are converted once per row, not once per input;
- `_decode_rows`: a tile of rows decoded the same way for BLAS (large batches, where float32
  GEMM is compute-bound and the decode is amortised over the batch).
Sums run in float32 with fastmath (reassociation lets LLVM vectorise the dot products), so
results equal the reference to float32 rounding, not bit for bit.

Compiled on first use and cached on disk (cache=True, __pycache__ beside this file): measured
here, the first process compiles every kernel for both code layouts in ~6 s, later ones import
numba (0.3 s) and load the cache (0.5 s). The runtime does this when it prepares its first
packed weight (kernel.warm_up, once per process), never inside a run.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from optcli.kernels.quantized import jit_any, tiles
from optcli.kernels.threads import row_spans, run_blocks

_FLAGS = dict(cache=True, fastmath=True, nogil=True)      # nogil: blocks run in threads


@njit(**_FLAGS)
def _decode_phases(row, srow, zrow, bits, gbytes, out):
    """out[p * n + j] = (code in phase p of byte j - zero[g]) * scale[g], g = j // gbytes,
    n = row bytes: one pass, stride 1 everywhere (int8 codes: bits = 8, signed). One function
    per width, each looping over groups itself: LLVM vectorises those loops, not loops behind
    a width branch or an inlined helper (measured 2-3x slower)."""
    if bits == 8:
        _decode8(row, srow, zrow, gbytes, out)
    elif bits == 4:
        _decode4(row, srow, zrow, gbytes, out)
    else:
        _decode2(row, srow, zrow, gbytes, out)


@njit(**_FLAGS)
def _decode8(row, srow, zrow, gbytes, out):
    for g in range((row.shape[0] + gbytes - 1) // gbytes):
        s, z = srow[g if srow.shape[0] > 1 else 0], np.float32(zrow[g if zrow.shape[0] > 1 else 0])
        seg, o = row[g * gbytes:(g + 1) * gbytes], out[g * gbytes:(g + 1) * gbytes]
        for j in range(seg.shape[0]):            # views index from 0: no wraparound checks
            o[j] = (np.float32(seg[j]) - z) * s


@njit(**_FLAGS)
def _decode4(row, srow, zrow, gbytes, out):
    n = row.shape[0]
    for g in range((n + gbytes - 1) // gbytes):
        s, z = srow[g if srow.shape[0] > 1 else 0], np.float32(zrow[g if zrow.shape[0] > 1 else 0])
        j0 = g * gbytes
        seg = row[j0:j0 + gbytes]
        o0, o1 = out[j0:j0 + seg.shape[0]], out[n + j0:n + j0 + seg.shape[0]]
        for j in range(seg.shape[0]):
            f = np.float32(seg[j])                       # byte 16 c0 + c1, exact in float32
            c0 = np.floor(f * np.float32(1 / 16))
            o0[j] = (c0 - z) * s
            o1[j] = (f - np.float32(16) * c0 - z) * s


@njit(**_FLAGS)
def _decode2(row, srow, zrow, gbytes, out):
    n = row.shape[0]
    for g in range((n + gbytes - 1) // gbytes):
        s, z = srow[g if srow.shape[0] > 1 else 0], np.float32(zrow[g if zrow.shape[0] > 1 else 0])
        j0 = g * gbytes
        seg = row[j0:j0 + gbytes]
        m = seg.shape[0]
        o0, o1 = out[j0:j0 + m], out[n + j0:n + j0 + m]
        o2, o3 = out[2 * n + j0:2 * n + j0 + m], out[3 * n + j0:3 * n + j0 + m]
        for j in range(m):
            f = np.float32(seg[j])                       # 64 c0 + 16 c1 + 4 c2 + c3
            t0 = np.floor(f * np.float32(1 / 64))        # c0
            t1 = np.floor(f * np.float32(1 / 16))        # 4 c0 + c1
            t2 = np.floor(f * np.float32(1 / 4))         # 16 c0 + 4 c1 + c2
            o0[j] = (t0 - z) * s
            o1[j] = (t1 - np.float32(4) * t0 - z) * s
            o2[j] = (t2 - np.float32(4) * t1 - z) * s
            o3[j] = (f - np.float32(4) * t2 - z) * s


@njit(**_FLAGS)
def _rows8(x, xsum, codes, scale, zero, gbytes, r0, r1, out):
    """8-bit codes at batch 1: out[r] = sum_g scale[r, g] * (sum_k u[r, k] x[k]
    - zero[r, g] * xsum[g]) = sum_k (u - zero) * scale * x, the subtraction and scaling moved
    out of the inner loop: per weight a load, a convert and an FMA, from the stored bytes."""
    for r in range(r0, r1):
        srow, zrow = scale[r if scale.shape[0] > 1 else 0], zero[r if zero.shape[0] > 1 else 0]
        total = np.float32(0.0)
        for g in range(xsum.shape[0]):
            us, x0 = codes[r, g * gbytes:(g + 1) * gbytes], x[g * gbytes:(g + 1) * gbytes]
            acc = np.float32(0.0)
            for j in range(us.shape[0]):       # views index from 0: LLVM vectorises
                acc += np.float32(us[j]) * x0[j]
            z = np.float32(zrow[g if zrow.shape[0] > 1 else 0])
            total += srow[g if srow.shape[0] > 1 else 0] * (acc - z * xsum[g])
        out[r] = total


@njit(**_FLAGS)
def _rows4(x, xsum, codes, scale, zero, gbytes, r0, r1, out):
    """`_rows8` for 4-bit codes: byte f = 16 c0 + c1 split in float32 lanes (c0 = floor(f / 16),
    c1 = f - 16 c0), each code multiplied by its own unit-stride run of x (phase-major: x[:n]
    even columns, x[n:] odd ones)."""
    n = codes.shape[1]
    for r in range(r0, r1):
        srow, zrow = scale[r if scale.shape[0] > 1 else 0], zero[r if zero.shape[0] > 1 else 0]
        total = np.float32(0.0)
        for g in range(xsum.shape[0]):
            j0 = g * gbytes
            us = codes[r, j0:j0 + gbytes]
            x0, x1 = x[j0:j0 + us.shape[0]], x[n + j0:n + j0 + us.shape[0]]
            acc = np.float32(0.0)
            for j in range(us.shape[0]):
                f = np.float32(us[j])
                c0 = np.floor(f * np.float32(1 / 16))
                acc += c0 * x0[j] + (f - np.float32(16) * c0) * x1[j]
            z = np.float32(zrow[g if zrow.shape[0] > 1 else 0])
            total += srow[g if srow.shape[0] > 1 else 0] * (acc - z * xsum[g])
        out[r] = total


@njit(**_FLAGS)
def _rows2(x, xsum, codes, scale, zero, gbytes, r0, r1, out):
    """`_rows4` for 2-bit codes: byte f = 64 c0 + 16 c1 + 4 c2 + c3, from t0 = floor(f / 64)
    = c0, t1 = floor(f / 16) = 4 c0 + c1 and t2 = floor(f / 4) = 16 c0 + 4 c1 + c2: four codes,
    four runs of x."""
    n = codes.shape[1]
    for r in range(r0, r1):
        srow, zrow = scale[r if scale.shape[0] > 1 else 0], zero[r if zero.shape[0] > 1 else 0]
        total = np.float32(0.0)
        for g in range(xsum.shape[0]):
            j0 = g * gbytes
            us = codes[r, j0:j0 + gbytes]
            m = us.shape[0]
            x0, x1 = x[j0:j0 + m], x[n + j0:n + j0 + m]
            x2, x3 = x[2 * n + j0:2 * n + j0 + m], x[3 * n + j0:3 * n + j0 + m]
            acc = np.float32(0.0)
            for j in range(m):
                f = np.float32(us[j])
                t0 = np.floor(f * np.float32(1 / 64))
                t1 = np.floor(f * np.float32(1 / 16))
                t2 = np.floor(f * np.float32(1 / 4))
                acc += (t0 * x0[j] + (t1 - np.float32(4) * t0) * x1[j]
                        + (t2 - np.float32(4) * t1) * x2[j] + (f - np.float32(4) * t2) * x3[j])
            z = np.float32(zrow[g if zrow.shape[0] > 1 else 0])
            total += srow[g if srow.shape[0] > 1 else 0] * (acc - z * xsum[g])
        out[r] = total


@njit(**_FLAGS)
def _rows3(x, xsum, codes, scale, zero, gunits, r0, r1, out):
    """3-bit codes at batch 1: 8 codes fill 3 bytes (a unit), v = 65536 b0 + 256 b1 + b2
    (exact in float32), code p of the unit = t_p - 8 t_(p-1) with t_p = floor(v / 8^(7-p));
    x in unit-phase order (`_unit_phases`: x[p * U + u] = x[8u + p]) so that each code's
    run of x has unit stride. Groups are whole units (gunits each)."""
    n_units = x.shape[0] // 8
    e = np.float32(8)
    for r in range(r0, r1):
        srow, zrow = scale[r if scale.shape[0] > 1 else 0], zero[r if zero.shape[0] > 1 else 0]
        total = np.float32(0.0)
        for g in range(xsum.shape[0]):
            u0 = g * gunits
            u1 = min(u0 + gunits, n_units)
            b = codes[r, 3 * u0:3 * u1]
            x0, x1 = x[u0:u1], x[n_units + u0:n_units + u1]
            x2, x3 = x[2 * n_units + u0:2 * n_units + u1], x[3 * n_units + u0:3 * n_units + u1]
            x4, x5 = x[4 * n_units + u0:4 * n_units + u1], x[5 * n_units + u0:5 * n_units + u1]
            x6, x7 = x[6 * n_units + u0:6 * n_units + u1], x[7 * n_units + u0:7 * n_units + u1]
            acc = np.float32(0.0)
            for u in range(u1 - u0):
                v = (np.float32(b[3 * u]) * np.float32(65536) + np.float32(b[3 * u + 1])
                     * np.float32(256) + np.float32(b[3 * u + 2]))
                t0 = np.floor(v * np.float32(2.0 ** -21))
                t1 = np.floor(v * np.float32(2.0 ** -18))
                t2 = np.floor(v * np.float32(2.0 ** -15))
                t3 = np.floor(v * np.float32(2.0 ** -12))
                t4 = np.floor(v * np.float32(2.0 ** -9))
                t5 = np.floor(v * np.float32(2.0 ** -6))
                t6 = np.floor(v * np.float32(2.0 ** -3))
                acc += (t0 * x0[u] + (t1 - e * t0) * x1[u] + (t2 - e * t1) * x2[u]
                        + (t3 - e * t2) * x3[u] + (t4 - e * t3) * x4[u] + (t5 - e * t4) * x5[u]
                        + (t6 - e * t5) * x6[u] + (v - e * t6) * x7[u])
            z = np.float32(zrow[g if zrow.shape[0] > 1 else 0])
            total += srow[g if srow.shape[0] > 1 else 0] * (acc - z * xsum[g])
        out[r] = total


@njit(**_FLAGS)
def _rows_decoded(xp, codes, scale, zero, bits, gbytes, r0, r1, out):
    """out[:, r0:r1] = xp @ W[r0:r1].T, rows decoded 4 at a time (`_decode_phases`) into an
    L1 buffer and dotted with every input there, 4 sums a pass so each load of x serves 4
    rows; xp[B, per_byte * row_bytes] (`_phases`). Measured on 4096^2 int8, batch 16: 7.8 ms
    against 11.1 ms one row at a time."""
    buf = np.zeros((4, xp.shape[1]), np.float32)
    for r in range(r0, r1, 4):
        m = min(4, r1 - r)
        for i in range(m):
            _decode_phases(codes[r + i], scale[r + i if scale.shape[0] > 1 else 0],
                           zero[r + i if zero.shape[0] > 1 else 0], bits, gbytes, buf[i])
        w0, w1, w2, w3 = buf[0], buf[1], buf[2], buf[3]   # rows past r1 hold stale values,
        for b in range(xp.shape[0]):                     # their sums are not stored
            xb = xp[b]
            a0 = a1 = a2 = a3 = np.float32(0.0)
            for k in range(xb.shape[0]):
                v = xb[k]
                a0 += w0[k] * v
                a1 += w1[k] * v
                a2 += w2[k] * v
                a3 += w3[k] * v
            out[b, r] = a0
            if m > 1:
                out[b, r + 1] = a1
            if m > 2:
                out[b, r + 2] = a2
            if m > 3:
                out[b, r + 3] = a3


@njit(**_FLAGS)
def _decode_rows(codes, scale, zero, bits, gbytes, r0, tile):
    """tile[i, :] = row r0 + i decoded in phase-major order."""
    for i in range(tile.shape[0]):
        r = r0 + i
        _decode_phases(codes[r], scale[r if scale.shape[0] > 1 else 0],
                       zero[r if zero.shape[0] > 1 else 0], bits, gbytes, tile[i])


@njit(**_FLAGS)
def _group_sums(xp, n, gbytes):
    """xsum[B, n_groups]: the sum of x over each group's columns (the zero point's share);
    xp[B, per_byte * n] phase-major, a group being bytes [g * gbytes, (g + 1) * gbytes) of
    every phase."""
    per = xp.shape[1] // n
    xsum = np.zeros((xp.shape[0], (n + gbytes - 1) // gbytes), np.float32)
    for b in range(xp.shape[0]):
        for g in range(xsum.shape[1]):
            for p in range(per):
                seg = xp[b, p * n + g * gbytes:p * n + min(n, (g + 1) * gbytes)]
                for k in range(seg.shape[0]):
                    xsum[b, g] += seg[k]
    return xsum


def aligned_group_bytes(w) -> int:
    """Bytes per group when w's codes are byte-aligned (8, 4, 2 bits and a group of whole
    bytes, or a single group per row), else 0 (jit_any's path)."""
    per = 8 // w.bits if w.bits in (2, 4, 8) else 0
    if not per:
        return 0
    if w.group >= w.shape[1]:
        return w.codes.shape[1]
    return w.group // per if w.group % per == 0 else 0


def _phases(x: np.ndarray, bits: int) -> np.ndarray:
    """x[B, cols] -> xp[B, per_byte * row_bytes] with xp[b, p * n + j] = x[b, j * per_byte + p]
    (zero past cols, where the padding codes of the last byte meet it)."""
    per = 8 // bits
    if per == 1:
        return x
    width = -(-x.shape[1] // per) * per
    padded = x if width == x.shape[1] else np.pad(x, ((0, 0), (0, width - x.shape[1])))
    return np.ascontiguousarray(padded.reshape(x.shape[0], -1, per).transpose(0, 2, 1)
                                ).reshape(x.shape[0], -1)


def unit_group(w) -> int:
    """Units (8 codes, 3 bytes) per group when `_rows3` can take w: 3 bits, whole units per
    row and per group; else 0."""
    cols = w.shape[1]
    if w.bits != 3 or cols % 8:
        return 0
    if w.group >= cols:
        return cols // 8
    return w.group // 8 if w.group % 8 == 0 else 0


def _unit_phases(x: np.ndarray) -> np.ndarray:
    """x[cols] -> x[p * U + u] = x[8u + p], U = cols / 8 (cols a multiple of 8)."""
    return np.ascontiguousarray(x.reshape(-1, 8).T).reshape(-1)


def linear_rows(x: np.ndarray, w, threads: int) -> np.ndarray:
    """y[B, rows] = x[B, cols] @ W.T for a PackedWeight w (x float32, C-contiguous), its rows
    in blocks on `threads` threads."""
    out = np.empty((x.shape[0], w.shape[0]), np.float32)
    gbytes, gunits = aligned_group_bytes(w), unit_group(w)
    if gunits and x.shape[0] == 1:
        xsum = np.add.reduceat(x[0], np.arange(0, w.shape[1], 8 * gunits)).astype(np.float32)
        xu = _unit_phases(x[0])
        def block(r0, r1):
            _rows3(xu, xsum, w.codes, w.scale, w.zero, gunits, r0, r1, out[0])
    elif not gbytes:
        def block(r0, r1):
            jit_any.rows(x, w.codes, w.scale, w.zero, w.bits, w.group, r0, r1, out)
    elif x.shape[0] == 1:
        xp = _phases(x, w.bits)
        xsum = _group_sums(xp, w.codes.shape[1], gbytes)
        kernel = {8: _rows8, 4: _rows4, 2: _rows2}[w.bits]
        def block(r0, r1):
            kernel(xp[0], xsum[0], w.codes, w.scale, w.zero, gbytes, r0, r1, out[0])
    else:
        xp = _phases(x, w.bits)
        def block(r0, r1):
            _rows_decoded(xp, w.codes, w.scale, w.zero, w.bits, gbytes, r0, r1, out)
    spans = row_spans(w.shape[0], threads)
    run_blocks(lambda i: block(*spans[i]), len(spans), threads)
    return out


def linear_tiles(x: np.ndarray, w, threads: int) -> np.ndarray:
    """The same product through decoded tiles and BLAS (tiles.tiled_linear)."""
    gbytes = aligned_group_bytes(w)
    if not gbytes:
        def decode(r0, tile):
            jit_any.decode_rows(w.codes, w.scale, w.zero, w.bits, w.group, r0, tile)
        return tiles.tiled_linear(x, w.shape[0], _threaded(decode, threads))
    def decode(r0, tile):
        _decode_rows(w.codes, w.scale, w.zero, w.bits, gbytes, r0, tile)
    return tiles.tiled_linear(_phases(x, w.bits), w.shape[0], _threaded(decode, threads))


def _threaded(decode, threads: int):
    """decode(r0, tile) spread over row blocks of the tile on `threads` threads."""
    def run(r0: int, tile: np.ndarray) -> None:
        spans = row_spans(tile.shape[0], threads)
        run_blocks(lambda i: decode(r0 + spans[i][0], tile[spans[i][0]:spans[i][1]]),
                   len(spans), threads)
    return run
