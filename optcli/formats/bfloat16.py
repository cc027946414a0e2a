"""bfloat16 storage: the top 16 bits of each float32 weight (8 exponent bits, 7 mantissa bits),
rounded to nearest even, held as uint16 raw bits (NumPy has no bfloat16 dtype).

    arrays  data  uint16 [shape]: the bfloat16 bit patterns
    params  —
    decode  float32 bits = data << 16

The float32 range is kept (unlike float16, nothing overflows); relative error <= 2**-8.
Written by `quantize: {precision: bfloat16}`; loading refuses NaN/Inf patterns.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from optcli.errors import ModelFormatError
from optcli.formats.base import StoredTensor, expect

EXPONENT = np.uint16(0x7F80)      # all exponent bits set: Inf or NaN


def to_bfloat16_bits(w: np.ndarray) -> np.ndarray:
    """float32 -> uint16 bfloat16 bit patterns, round to nearest, ties to even."""
    u = np.ascontiguousarray(w, np.float32).view(np.uint32).astype(np.uint64)
    rounded = u + 0x7FFF + ((u >> 16) & 1)          # add half an ulp of bf16, ties to even
    return (rounded >> 16).astype(np.uint16)


class BFloat16Tensor(StoredTensor):
    encoding = "bfloat16"

    def __init__(self, data: np.ndarray):
        self.data = data
        self.shape = tuple(int(s) for s in data.shape)

    @classmethod
    def from_float(cls, w: np.ndarray) -> "BFloat16Tensor":
        return cls(to_bfloat16_bits(w))

    def decode(self) -> np.ndarray:
        return (self.data.astype(np.uint32) << 16).view(np.float32)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"data": self.data}

    @property
    def nonzeros(self) -> int:
        return int(np.count_nonzero(self.data & np.uint16(0x7FFF)))     # +0 and -0 are zero

    def describe(self) -> str:
        return "dense bf16"

    @classmethod
    def from_stored(cls, name: str, shape: tuple[int, ...], dtype: str,
                    arrays: dict[str, np.ndarray], params: dict[str, Any]) -> "BFloat16Tensor":
        data = expect(name, arrays, "data", ("uint16",), shape=shape)
        bad = int(np.count_nonzero((data & EXPONENT) == EXPONENT))
        if bad:
            raise ModelFormatError(f"tensor '{name}': {bad} NaN/Inf bfloat16 value(s)")
        return cls(data)
