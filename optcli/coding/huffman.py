"""Canonical Huffman coding of integer symbol streams, encoded and decoded with NumPy.

Huffman (1952), "A Method for the Construction of Minimum-Redundancy Codes": the optimal
prefix code for a known symbol distribution. Deep Compression (Han, Mao & Dally, ICLR 2016)
Huffman-codes the quantized weights and sparse index gaps of a pruned network, saving a
further 20-30 %; optcli does the same for whatever integer arrays a tensor is stored as.

Symbols. A uint8/uint16 value is its own symbol; int8/int16 values are zigzag-mapped
(0, -1, 1, -2, ... -> 0, 1, 2, 3, ...) so that small magnitudes get small symbols.

Code lengths. Huffman's tree (heap merge, ties broken by node id, so deterministic) gives
the lengths; they are limited to MAX_LEN = 16 bits with bzip2's heuristic: while the longest
code is too long, flatten the counts (c -> c // 2 + 1) and rebuild. The loss against an
optimal length-limited code (package-merge) is a small fraction of a percent in practice,
and 16 bits keeps the decoder's lookup table at most 2^16 entries. A single distinct symbol
gets a 1-bit code. Codes are canonical (ordered by length, then symbol), so the lengths alone
define them: code_i = (sum over j < i of 2^(L - l_j)) >> (L - l_i), L = the longest length.

Streams. The n symbols are dealt round-robin into K = lanes(n) sub-streams (symbol i goes to
lane i % K), each coded MSB-first and concatenated; `offsets[k]` is the bit where lane k
starts. The decoder walks all lanes in lockstep: one step reads the next L bits of every lane
(a 24-bit window from 3 bytes), looks symbol and length up in a 2^L table and advances, so the
Python loop runs ceil(n / K) times, not n.

Stored: lengths uint8 [max symbol + 1] (0 = symbol absent), offsets [K] (narrowest uint),
bits uint8 [ceil(total bits / 8)]. Decoding checks every declared count against the array
sizes before allocating, and that every lane ends exactly where the next begins.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass

import numpy as np

from optcli.errors import ModelFormatError

CODED_DTYPES = ("uint8", "uint16", "int8", "int16")
MAX_LEN = 16
LANE_SYMBOLS = 1024      # at least this many symbols per lane: offsets cost <= 1/32 bit/symbol
MAX_LANES = 4096
_CHUNK = 1 << 20         # symbols per chunk when expanding codes to bits (bounds temporaries)


@dataclass(frozen=True)
class HuffmanCode:
    lengths: np.ndarray      # uint8 [max symbol + 1]
    offsets: np.ndarray      # uint [K]: first bit of each lane
    bits: np.ndarray         # uint8 [ceil(total bits / 8)], MSB first
    count: int               # number of symbols

    @property
    def nbytes(self) -> int:
        return self.lengths.nbytes + self.offsets.nbytes + self.bits.nbytes


def lanes(n: int) -> int:
    """Number of interleaved sub-streams for n symbols (0 for an empty stream)."""
    return 0 if n == 0 else int(np.clip(n // LANE_SYMBOLS, 1, MAX_LANES))


# ----------------------------------------------------------------------------- symbols

def to_symbols(x: np.ndarray) -> np.ndarray:
    """x (a CODED_DTYPES array, any shape) as non-negative int64 symbols [n]."""
    if x.dtype.name not in CODED_DTYPES:
        raise ValueError(f"cannot entropy-code dtype {x.dtype.name}; valid: {CODED_DTYPES}")
    s = x.reshape(-1).astype(np.int64)
    if x.dtype.kind == "u":
        return s
    return (s << 1) ^ (s >> 63)          # zigzag: s >= 0 -> 2s, s < 0 -> -2s - 1


def from_symbols(sym: np.ndarray, dtype: np.dtype) -> np.ndarray:
    s = sym.astype(np.int64)
    if np.dtype(dtype).kind == "i":
        s = (s >> 1) ^ -(s & 1)
    return s.astype(dtype)


def alphabet(dtype: np.dtype) -> int:
    return 1 << (8 * np.dtype(dtype).itemsize)


def empirical_entropy(x: np.ndarray) -> float:
    """Shannon entropy of the stream's own symbol frequencies, bits per symbol (0 if empty)."""
    if x.size == 0:
        return 0.0
    counts = np.bincount(to_symbols(x))
    p = counts[counts > 0] / x.size
    return max(0.0, float(-(p * np.log2(p)).sum()))     # max: one symbol gives -0.0


# ----------------------------------------------------------------------------- code lengths

def code_lengths(counts: np.ndarray) -> np.ndarray:
    """Huffman code lengths, uint8 [len(counts)], limited to MAX_LEN; 0 for absent symbols."""
    out = np.zeros(counts.size, np.uint8)
    present = np.flatnonzero(counts)
    if present.size <= 1:
        out[present] = 1                 # one distinct symbol: a 1-bit code
        return out
    w = counts[present].astype(np.int64)
    depth = _tree_depths(w)
    while depth.max() > MAX_LEN:
        flat = w // 2 + 1                # bzip2's flattening: rarer symbols move up
        # at its fixed point (counts of 1 and 2) equal weights give depth <= ceil(log2 m) <= 16
        w = flat if not np.array_equal(flat, w) else np.ones_like(w)
        depth = _tree_depths(w)
    out[present] = depth
    return out


def _tree_depths(w: np.ndarray) -> np.ndarray:
    """Depth of each leaf in Huffman's tree over weights w [m >= 2]."""
    m = w.size
    heap = [(int(c), i) for i, c in enumerate(w)]
    heapq.heapify(heap)
    parent = np.zeros(2 * m - 1, np.int64)
    for node in range(m, 2 * m - 1):     # internal nodes get increasing ids
        (wa, a), (wb, b) = heapq.heappop(heap), heapq.heappop(heap)
        parent[a] = parent[b] = node
        heapq.heappush(heap, (wa + wb, node))
    depth = [0] * (2 * m - 1)            # the root is node 2m - 2; parents have larger ids
    for i in range(2 * m - 3, -1, -1):
        depth[i] = depth[parent[i]] + 1
    return np.asarray(depth[:m], np.int64)


def canonical(lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Symbols in canonical order (by length, then symbol), their Kraft slots 2^(L - l) and
    left-aligned starts in a 2^L table, L = the longest length."""
    syms = np.flatnonzero(lengths)
    order = syms[np.lexsort((syms, lengths[syms]))]
    longest = int(lengths.max(initial=0))
    slots = np.left_shift(1, longest - lengths[order].astype(np.int64))
    starts = np.cumsum(slots) - slots
    return order, starts, longest


# ----------------------------------------------------------------------------- encoding

def encode(x: np.ndarray) -> HuffmanCode:
    """Canonical Huffman code of x (a CODED_DTYPES array). Deterministic."""
    sym = to_symbols(x)
    n = sym.size
    if n == 0:
        empty = np.zeros(0, np.uint8)
        return HuffmanCode(empty, empty, empty, 0)
    lengths = code_lengths(np.bincount(sym))
    order, starts, longest = canonical(lengths)
    code_of = np.zeros(lengths.size, np.int64)
    code_of[order] = starts >> (longest - lengths[order].astype(np.int64))
    k = lanes(n)
    seq = sym[_lane_order(n, k)]                       # lane 0's symbols, then lane 1's, ...
    lens = lengths[seq].astype(np.int64)
    ends = np.cumsum(lens)                             # bit just after each coded symbol
    first = np.concatenate([[0], np.cumsum(_lane_sizes(n, k))[:-1]])
    offsets = np.concatenate([[0], ends])[first]
    bits = np.packbits(_code_bits(code_of[seq], lens, ends))
    return HuffmanCode(lengths, offsets.astype(np.min_scalar_type(int(ends[-1]))), bits, n)


def _lane_sizes(n: int, k: int) -> np.ndarray:
    """Symbols per lane: lane j holds symbols j, j + k, j + 2k, ... < n."""
    return (n - np.arange(k) + k - 1) // k


def _lane_order(n: int, k: int) -> np.ndarray:
    """Symbol indices lane by lane: [m, k] grid of i = row * k + lane, read column-wise."""
    m = -(-n // k)
    idx = np.arange(m * k).reshape(m, k).T.reshape(-1)
    return idx[idx < n]


def _code_bits(codes: np.ndarray, lens: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Every code's bits MSB first, concatenated: uint8 0/1 [sum(lens)], built in chunks."""
    parts = []
    for s in range(0, codes.size, _CHUNK):
        c, ln = codes[s:s + _CHUNK], lens[s:s + _CHUNK]
        base = ends[s - 1] if s else 0
        bitpos = np.arange(base, ends[min(s + _CHUNK, codes.size) - 1])
        shift = np.repeat(ends[s:s + _CHUNK], ln) - 1 - bitpos   # bit's weight in its code
        parts.append((np.repeat(c, ln) >> shift).astype(np.uint8) & 1)
    return np.concatenate(parts)


# ----------------------------------------------------------------------------- decoding

def decode(code: HuffmanCode, dtype: str, shape: tuple[int, ...], name: str = "") -> np.ndarray:
    """The array encode() was given (dtype and shape are the caller's record of it).
    Malformed input raises ModelFormatError naming `name`; memory stays bounded by the size
    of `bits` (each symbol takes at least one bit)."""
    n = math.prod(shape)                                   # Python ints: no overflow
    _check(code, n, dtype, name)
    if n == 0:
        return np.zeros(shape, dtype)
    sym_table, len_table, longest = _table(code.lengths)
    k = lanes(n)
    buf = np.concatenate([code.bits, np.zeros(3, np.uint8)])   # a 3-byte window never overruns
    last = code.bits.size
    pos = code.offsets.astype(np.int64)
    out = np.empty(n, np.int32)
    mask = (1 << longest) - 1
    for row in range(0, n, k):                         # one symbol of every active lane
        a = min(k, n - row)
        p = pos[:a]
        byte = np.minimum(p >> 3, last)                # clamped: a bad stream cannot overrun
        win = (buf[byte].astype(np.int64) << 16) | (buf[byte + 1].astype(np.int64) << 8) \
            | buf[byte + 2]
        v = (win >> (24 - longest - (p & 7))) & mask
        out[row:row + a] = sym_table[v]
        p += len_table[v]
    _check_ends(pos, code, out, name)
    return from_symbols(out, np.dtype(dtype)).reshape(shape)


def _table(lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Lookup tables over the next L bits: symbol (-1 = no such code) and code length."""
    order, starts, longest = canonical(lengths)
    slots = np.left_shift(1, longest - lengths[order].astype(np.int64))
    size = 1 << longest
    sym = np.full(size, -1, np.int32)
    ln = np.zeros(size, np.int64)
    used = int(slots.sum())                            # <= size (Kraft, checked before)
    sym[:used] = np.repeat(order.astype(np.int32), slots)
    ln[:used] = np.repeat(lengths[order].astype(np.int64), slots)
    return sym, ln, longest


def _check(code: HuffmanCode, n: int, dtype: str, name: str) -> None:
    def bad(msg: str) -> ModelFormatError:
        return ModelFormatError(f"tensor '{name}': huffman stream: {msg}")
    if dtype not in CODED_DTYPES:
        raise bad(f"dtype {dtype!r} cannot be coded; valid: {', '.join(CODED_DTYPES)}")
    for role, a in (("lengths", code.lengths), ("offsets", code.offsets), ("bits", code.bits)):
        if a.ndim != 1 or a.dtype.kind != "u" or (role != "offsets" and a.dtype != np.uint8):
            raise bad(f"'{role}' must be a 1-D {'unsigned' if role == 'offsets' else 'uint8'} "
                      f"array, got {a.dtype.name} {list(a.shape)}")
    if n == 0:
        if code.lengths.size or code.offsets.size or code.bits.size:
            raise bad("an empty stream must have empty arrays")
        return
    ls = code.lengths.astype(np.int64)
    if ls.size > alphabet(dtype) or ls.max(initial=0) > MAX_LEN or not ls.any():
        raise bad(f"code lengths must be <= {MAX_LEN}, at least one > 0, for at most "
                  f"{alphabet(dtype)} symbols")
    if int(np.left_shift(1, MAX_LEN - ls[ls > 0]).sum()) > 1 << MAX_LEN:
        raise bad("code lengths violate the Kraft inequality (not a prefix code)")
    total = 8 * code.bits.size
    if n > total:
        raise bad(f"{n} symbols cannot fit in {total} bits")
    off = code.offsets.astype(np.int64)
    if off.size != lanes(n) or off[0] != 0 or np.any(np.diff(off) < 0) or off[-1] > total:
        raise bad(f"'offsets' must be {lanes(n)} non-decreasing lane starts from 0 to <= "
                  f"{total}")


def _check_ends(pos: np.ndarray, code: HuffmanCode, out: np.ndarray, name: str) -> None:
    """Every lane ended where the next starts, the last in the final byte; no invalid code."""
    ends = np.append(code.offsets[1:].astype(np.int64), pos[-1])
    if (not np.array_equal(pos, ends) or -(-int(pos[-1]) // 8) != code.bits.size
            or out.min() < 0):
        raise ModelFormatError(f"tensor '{name}': huffman stream is corrupt (a sub-stream "
                               "does not decode to its declared length)")
