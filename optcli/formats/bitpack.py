"""Dense bit-packing of small unsigned codes: n codes of `bits` bits in ceil(n * bits / 8) bytes.

Layout (a plain bit stream, what a hardware or C decoder reads without tables): code i occupies
stream bits [i * bits, (i + 1) * bits), most significant bit first, and the stream fills bytes
most significant bit first (np.packbits' default order); the last byte is zero-padded. E.g.
bits = 3, codes [5, 1, 7] -> 101 001 111 (+ 0000000) -> bytes 0b10100111, 0b10000000.

Used by the codebook encoding (weight sharing, Han et al. ICLR 2016: log2(k)-bit cluster
indices) and meant for low-bit integer codes (2/3/4-bit quantization). Widths 1..16 are
supported; codes are uint8 for bits <= 8, uint16 above.

Vectorised through a bit matrix: each code's big-endian bytes are unpacked to an [n, 8 or 16]
matrix of bits, the `bits` low columns kept ([n, bits]) and packbits'ed as one stream; unpacking
is the reverse (left-pad the [n, bits] matrix with zero columns and packbits along axis 1). The
temporary matrix costs n * 16 bytes at most (16 MB per million codes).
"""

from __future__ import annotations

import numpy as np

MAX_BITS = 16


def code_dtype(bits: int) -> np.dtype:
    """The unsigned dtype codes of this width are held in (uint8 up to 8 bits, then uint16)."""
    _check_bits(bits)
    return np.dtype(np.uint8 if bits <= 8 else np.uint16)


def packed_nbytes(count: int, bits: int) -> int:
    """Bytes pack() produces for `count` codes."""
    return (count * bits + 7) // 8


def pack(codes: np.ndarray, bits: int) -> np.ndarray:
    """codes (any unsigned ints < 2**bits, any shape; flattened) -> uint8 [packed_nbytes]."""
    _check_bits(bits)
    flat = np.asarray(codes).reshape(-1)
    if flat.size and int(flat.max()) >= (1 << bits):
        raise ValueError(f"a code is >= 2**{bits}")
    width = 8 * code_dtype(bits).itemsize
    be = flat.astype(code_dtype(bits).newbyteorder(">"))          # big-endian: MSB byte first
    matrix = np.unpackbits(be.view(np.uint8).reshape(-1, width // 8), axis=1)   # [n, width]
    return np.packbits(matrix[:, width - bits:].reshape(-1))


def unpack(packed: np.ndarray, bits: int, count: int) -> np.ndarray:
    """The first `count` codes of a packed stream -> uint8/uint16 [count]."""
    _check_bits(bits)
    if packed.size < packed_nbytes(count, bits):
        raise ValueError(f"{packed.size} bytes hold fewer than {count} codes of {bits} bits")
    width = 8 * code_dtype(bits).itemsize
    matrix = np.zeros((count, width), np.uint8)                   # left-padded [n, width]
    matrix[:, width - bits:] = np.unpackbits(packed, count=count * bits).reshape(count, bits)
    be = np.packbits(matrix, axis=1)                              # [n, width // 8] bytes
    return be.view(code_dtype(bits).newbyteorder(">")).reshape(count).astype(code_dtype(bits))


def _check_bits(bits: int) -> None:
    if not (isinstance(bits, (int, np.integer)) and 1 <= bits <= MAX_BITS):
        raise ValueError(f"bits must be an integer in 1..{MAX_BITS}, got {bits!r}")
