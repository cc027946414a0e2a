"""Exact dequantizers for the GGML tensor types that GGUF files store.

The block layouts follow ggml's `ggml-common.h` (block_q4_0 ... block_q6_K) and the reference
C dequantizers in `ggml-quants.c` (dequantize_row_*). Every function takes the raw bytes of a
whole number of blocks as uint8 [n_blocks, type_size] and returns float32 [n_blocks,
block_size]. The arithmetic is done in float32 in the same order as ggml (`d * q + m`,
`d * sc * q - dmin * m`), so results are bit-exact with llama.cpp and `gguf.quants`.

    raw = np.frombuffer(data, np.uint8).reshape(-1, TYPES["Q4_1"].type_size)
    w = TYPES["Q4_1"].dequantize(raw)            # [n_blocks, 32] float32

Block layouts (QK_K = 256 for the K-quants; f16 = IEEE half, little-endian):
    Q8_0  d f16 | qs int8[32]                       y = d * q
    Q4_0  d f16 | qs u8[16] (lo nibbles 0..15, hi 16..31)          y = d * (q - 8)
    Q4_1  d f16 | m f16 | qs u8[16]                  y = d * q + m
    Q5_0  d f16 | qh u32 | qs u8[16]  (bit j of qh is bit 4 of q_j)  y = d * (q - 16)
    Q5_1  d f16 | m f16 | qh u32 | qs u8[16]          y = d * q + m
    Q2_K  scales u8[16] (lo: scale, hi: min) | qs u8[64] | d f16 | dmin f16
    Q3_K  hmask u8[32] | qs u8[64] | scales 6-bit x16 in u8[12] | d f16
    Q4_K  d f16 | dmin f16 | scales 6-bit x8 + mins 6-bit x8 in u8[12] | qs u8[128]
    Q5_K  d f16 | dmin f16 | scales u8[12] | qh u8[32] | qs u8[128]
    Q6_K  ql u8[128] | qh u8[64] | scales int8[16] | d f16
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

QK_K = 256
_NIB = np.array([0, 4], np.uint8).reshape(1, 1, 2, 1)      # low nibble first, then high
_CRUMB = np.array([0, 2, 4, 6], np.uint8).reshape(1, 1, 4, 1)
_BITS8 = np.arange(8, dtype=np.uint8).reshape(1, 1, 8, 1)


def _f16(b: np.ndarray) -> np.ndarray:
    """uint8 [n, 2] -> float32 [n, 1] from little-endian IEEE half."""
    return np.ascontiguousarray(b).view("<f2").astype(np.float32)


def _nibbles(qs: np.ndarray, group: int) -> np.ndarray:
    """uint8 [n, k] -> [n, 2k]: per `group` bytes, all low nibbles then all high nibbles."""
    n = qs.shape[0]
    return ((qs.reshape(n, -1, 1, group) >> _NIB) & 0x0F).reshape(n, -1)


def _deq_f32(b: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(b).view("<f4").astype(np.float32)


def _deq_f16(b: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(b).view("<f2").astype(np.float32)


def _deq_bf16(b: np.ndarray) -> np.ndarray:
    # bfloat16 is the top half of a float32: shift it back into place.
    return (np.ascontiguousarray(b).view("<u2").astype(np.uint32) << 16).view(np.float32)


def _deq_q8_0(b: np.ndarray) -> np.ndarray:
    return _f16(b[:, :2]) * np.ascontiguousarray(b[:, 2:]).view(np.int8).astype(np.float32)


def _deq_q4_0(b: np.ndarray) -> np.ndarray:
    q = _nibbles(b[:, 2:], 16).astype(np.int8) - np.int8(8)
    return _f16(b[:, :2]) * q.astype(np.float32)


def _deq_q4_1(b: np.ndarray) -> np.ndarray:
    q = _nibbles(b[:, 4:], 16).astype(np.float32)
    return _f16(b[:, :2]) * q + _f16(b[:, 2:4])


def _five_bit(qh: np.ndarray, qs: np.ndarray) -> np.ndarray:
    """Q5_0/Q5_1 quants: low nibbles from qs, bit j of the u32 qh as bit 4 of q_j -> [n, 32]."""
    h = np.ascontiguousarray(qh).view("<u4") >> np.arange(32, dtype=np.uint32)   # [n, 32]
    return _nibbles(qs, 16) | ((h & 1).astype(np.uint8) << 4)


def _deq_q5_0(b: np.ndarray) -> np.ndarray:
    q = _five_bit(b[:, 2:6], b[:, 6:]).astype(np.int8) - np.int8(16)
    return _f16(b[:, :2]) * q.astype(np.float32)


def _deq_q5_1(b: np.ndarray) -> np.ndarray:
    q = _five_bit(b[:, 4:8], b[:, 8:]).astype(np.float32)
    return _f16(b[:, :2]) * q + _f16(b[:, 2:4])


def _scale_min_k4(s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Q4_K/Q5_K packed 6-bit scales and mins: uint8 [n, 12] -> (sc [n, 8], m [n, 8])."""
    a, b, c = s[:, 0:4], s[:, 4:8], s[:, 8:12]
    sc = np.concatenate([a & 0x3F, (c & 0x0F) | ((a >> 2) & 0x30)], axis=1)
    m = np.concatenate([b & 0x3F, (c >> 4) | ((b >> 2) & 0x30)], axis=1)
    return sc, m


def _k_affine(b: np.ndarray, q: np.ndarray) -> np.ndarray:
    """y = d * sc_j * q - dmin * m_j over 8 sub-blocks of 32, q [n, 256] (Q4_K, Q5_K)."""
    n = b.shape[0]
    sc, m = _scale_min_k4(b[:, 4:16])
    dl = (_f16(b[:, 0:2]) * sc.astype(np.float32)).reshape(n, 8, 1)
    ml = (_f16(b[:, 2:4]) * m.astype(np.float32)).reshape(n, 8, 1)
    return (dl * q.reshape(n, 8, 32).astype(np.float32) - ml).reshape(n, QK_K)


def _deq_q4_k(b: np.ndarray) -> np.ndarray:
    return _k_affine(b, _nibbles(b[:, 16:144], 32))


def _deq_q5_k(b: np.ndarray) -> np.ndarray:
    n = b.shape[0]
    hi = ((b[:, 16:48].reshape(n, 1, 1, 32) >> _BITS8) & 1).reshape(n, QK_K)  # bit j: sub-block j
    return _k_affine(b, _nibbles(b[:, 48:176], 32) | (hi << 4))


def _deq_q6_k(b: np.ndarray) -> np.ndarray:
    n = b.shape[0]
    lo = _nibbles(b[:, 0:128], 64)                                            # [n, 256]
    hi = ((b[:, 128:192].reshape(n, 2, 1, 32) >> _CRUMB) & 3).reshape(n, QK_K)
    q = ((lo | (hi << 4)).astype(np.int8) - np.int8(32)).astype(np.float32)
    d = _f16(b[:, 208:210]) * np.ascontiguousarray(b[:, 192:208]).view(np.int8).astype(np.float32)
    return (d.reshape(n, 16, 1) * q.reshape(n, 16, 16)).reshape(n, QK_K)


def _deq_q2_k(b: np.ndarray) -> np.ndarray:
    n = b.shape[0]
    s = b[:, 0:16]
    dl = (_f16(b[:, 80:82]) * (s & 0x0F).astype(np.float32)).reshape(n, 16, 1)
    ml = (_f16(b[:, 82:84]) * (s >> 4).astype(np.float32)).reshape(n, 16, 1)
    q = ((b[:, 16:80].reshape(n, 2, 1, 32) >> _CRUMB) & 3).reshape(n, 16, 16)
    return (dl * q.astype(np.float32) - ml).reshape(n, QK_K)


def _scales_k3(s: np.ndarray) -> np.ndarray:
    """Q3_K: 16 signed 6-bit scales from uint8 [n, 12] (low nibbles of 0..7, crumbs of 8..11)."""
    n = s.shape[0]
    lo = ((s[:, 0:8].reshape(n, 1, 8) >> _NIB.reshape(1, 2, 1)) & 0x0F).reshape(n, 16)
    hi = ((s[:, 8:12].reshape(n, 1, 4) >> _CRUMB.reshape(1, 4, 1)) & 3).reshape(n, 16)
    return ((lo | (hi << 4)).astype(np.int8) - np.int8(32)).astype(np.float32)


def _deq_q3_k(b: np.ndarray) -> np.ndarray:
    n = b.shape[0]
    dl = (_f16(b[:, 108:110]) * _scales_k3(b[:, 96:108])).reshape(n, 16, 1)
    lo = ((b[:, 32:96].reshape(n, 2, 1, 32) >> _CRUMB) & 3).reshape(n, QK_K)
    hbit = ((b[:, 0:32].reshape(n, 1, 1, 32) >> _BITS8) & 1).reshape(n, QK_K)
    q = lo.astype(np.int8) - ((hbit ^ 1) << 2).astype(np.int8)    # a clear hmask bit means -4
    return (dl * q.reshape(n, 16, 16).astype(np.float32)).reshape(n, QK_K)


@dataclass(frozen=True)
class QuantType:
    name: str
    code: int                  # ggml_type enum value
    block_size: int            # elements per block
    type_size: int             # bytes per block
    dequantize: Callable[[np.ndarray], np.ndarray]


_TABLE = [
    QuantType("F32", 0, 1, 4, _deq_f32),
    QuantType("F16", 1, 1, 2, _deq_f16),
    QuantType("Q4_0", 2, 32, 18, _deq_q4_0),
    QuantType("Q4_1", 3, 32, 20, _deq_q4_1),
    QuantType("Q5_0", 6, 32, 22, _deq_q5_0),
    QuantType("Q5_1", 7, 32, 24, _deq_q5_1),
    QuantType("Q8_0", 8, 32, 34, _deq_q8_0),
    QuantType("Q2_K", 10, QK_K, 84, _deq_q2_k),
    QuantType("Q3_K", 11, QK_K, 110, _deq_q3_k),
    QuantType("Q4_K", 12, QK_K, 144, _deq_q4_k),
    QuantType("Q5_K", 13, QK_K, 176, _deq_q5_k),
    QuantType("Q6_K", 14, QK_K, 210, _deq_q6_k),
    QuantType("BF16", 30, 1, 2, _deq_bf16),
]
TYPES: dict[str, QuantType] = {t.name: t for t in _TABLE}
BY_CODE: dict[int, QuantType] = {t.code: t for t in _TABLE}

# Names of the ggml types this module cannot decode, for error messages.
UNSUPPORTED_NAMES = {9: "Q8_1", 15: "Q8_K", 16: "IQ2_XXS", 17: "IQ2_XS", 18: "IQ3_XXS",
                     19: "IQ1_S", 20: "IQ4_NL", 21: "IQ3_S", 22: "IQ2_S", 23: "IQ4_XS",
                     24: "I8", 25: "I16", 26: "I32", 27: "I64", 28: "F64", 29: "IQ1_M",
                     34: "TQ1_0", 35: "TQ2_0", 39: "MXFP4"}

CHUNK_BLOCKS = 1 << 16      # blocks decoded at once: bounds the float temporaries (~64 MB)


def dequantize(raw: np.ndarray, qt: QuantType) -> np.ndarray:
    """uint8 raw bytes (a whole number of blocks) -> float32 [n_elements], chunk by chunk."""
    blocks = raw.reshape(-1, qt.type_size)
    out = np.empty((blocks.shape[0], qt.block_size), np.float32)
    for i in range(0, blocks.shape[0], CHUNK_BLOCKS):
        out[i:i + CHUNK_BLOCKS] = qt.dequantize(np.asarray(blocks[i:i + CHUNK_BLOCKS]))
    return out.reshape(-1)
