"""Codebook storage (weight sharing): every weight, or every unit of weights, is an index into a
small table of shared float32 values (Deep Compression: Han, Mao, Dally, ICLR 2016, §3).

    arrays  codes     uint8 [ceil(count * bits / 8)]: `count` indices of `bits` bits each,
                      bit-packed MSB-first (formats/bitpack.py)
            codebook  float32 [k] (unit "weight") or [k, d] (vector units), 1 <= k <= 2**bits
    params  bits (1..16), count, unit

`unit` says what one index stands for; W is viewed as [count, d] in row-major order:
- weight: one scalar, d = 1, count = W.size              decode: codebook[index].reshape(shape)
- row / filter: one row of W[out, ...], d = prod(shape[1:]), count = shape[0] (filter: a 4-D
  conv weight [O, C, kh, kw], one output filter [C*kh*kw])
- kernel: one [kh, kw] kernel of a conv weight, d = kh*kw, count = O*C
For the vector units decode is codebook[index] ([count, d]) reshaped to the logical shape.

A pruned tensor keeps its sparse encoding instead, with codebook indices as values (sparse.py),
so its zeros are never stored and stay exactly zero.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from optcli.errors import ModelFormatError
from optcli.formats.base import StoredTensor, check_finite, expect
from optcli.formats.bitpack import MAX_BITS, pack, packed_nbytes, unpack

UNITS = ("weight", "row", "filter", "kernel")


def index_bits(k: int) -> int:
    """Bits of an index into k entries (at least 1)."""
    return max(1, math.ceil(math.log2(max(k, 1))))


def unit_dim(shape: tuple[int, ...], unit: str) -> int | None:
    """d, the weights per index for `unit` on a tensor of `shape`; None if the unit does not
    apply to that rank (row needs >= 2-D, filter and kernel a 4-D conv weight)."""
    if unit == "weight":
        return 1
    if unit == "row" and len(shape) >= 2 or unit == "filter" and len(shape) == 4:
        return int(np.prod(shape[1:], dtype=np.int64))
    if unit == "kernel" and len(shape) == 4:
        return int(shape[2] * shape[3])
    return None


class CodebookTensor(StoredTensor):
    encoding = "codebook"

    def __init__(self, shape: tuple[int, ...], codes: np.ndarray, codebook: np.ndarray,
                 bits: int, unit: str = "weight"):
        self.shape, self.codes, self.codebook, self.bits, self.unit = (
            tuple(int(s) for s in shape), codes, codebook, int(bits), unit)

    @classmethod
    def from_index(cls, shape: tuple[int, ...], index: np.ndarray, codebook: np.ndarray,
                   unit: str = "weight") -> "CodebookTensor":
        """Pack index [count] (< len(codebook)) with the fewest bits that hold it."""
        bits = index_bits(len(codebook))
        return cls(shape, pack(index.astype(np.int64), bits), np.ascontiguousarray(
            codebook, np.float32), bits, unit)

    @property
    def count(self) -> int:
        return self.size // max(unit_dim(self.shape, self.unit) or 1, 1)

    def index(self) -> np.ndarray:
        """The unpacked indices, uint8/uint16 [count]."""
        return unpack(self.codes, self.bits, self.count)

    def decode(self) -> np.ndarray:
        return self.codebook[self.index()].astype(np.float32).reshape(self.shape)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"codes": self.codes, "codebook": self.codebook}

    def params(self) -> dict[str, Any]:
        return {"bits": self.bits, "count": self.count, "unit": self.unit}

    def describe(self) -> str:
        kind = "codebook" if self.unit == "weight" else f"vq {self.unit}"
        return f"{kind} {self.bits}b"

    @classmethod
    def from_stored(cls, name: str, shape: tuple[int, ...], dtype: str,
                    arrays: dict[str, np.ndarray], params: dict[str, Any]) -> "CodebookTensor":
        unit, bits, count = params.get("unit"), params.get("bits"), params.get("count")
        d = unit_dim(shape, unit) if unit in UNITS else None
        if d is None:
            raise ModelFormatError(f"tensor '{name}': codebook unit {unit!r} is not one of "
                                   f"{', '.join(UNITS)} or does not fit shape {list(shape)}")
        if not (type(bits) is int and 1 <= bits <= MAX_BITS):
            raise ModelFormatError(f"tensor '{name}': codebook bits {bits!r} not in 1..{MAX_BITS}")
        n = int(np.prod(shape, dtype=np.int64)) // max(d, 1)
        if count != n:
            raise ModelFormatError(f"tensor '{name}': codebook count {count!r}, expected {n}")
        book = expect(name, arrays, "codebook", ("float32",), ndim=1 if unit == "weight" else 2)
        if not 1 <= book.shape[0] <= 1 << bits or (book.ndim == 2 and book.shape[1] != d):
            raise ModelFormatError(f"tensor '{name}': codebook shape {list(book.shape)} does not "
                                   f"fit {bits}-bit indices of units of {d}")
        check_finite(name, book)
        codes = expect(name, arrays, "codes", ("uint8",), shape=(packed_nbytes(n, bits),))
        t = cls(shape, codes, book, bits, unit)
        if n and int(t.index().max()) >= book.shape[0]:
            raise ModelFormatError(f"tensor '{name}': codebook index out of range "
                                   f"(codebook has {book.shape[0]} entries)")
        return t


def is_shared(t: StoredTensor) -> bool:
    """True for codebook-shared weights: a CodebookTensor or a sparse tensor whose values are
    codebook indices (what the quantize step refuses to re-quantize unless asked)."""
    return isinstance(t, CodebookTensor) or getattr(t, "codebook", None) is not None
