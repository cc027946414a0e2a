"""Integer-quantized storage: int8 codes with a float32 scale (and zero point) per tensor or
per channel along `axis`.

    value = (code - zero_point) * scale          (symmetric: zero_point = 0, not stored)

codes[shape] int8; scale[shape[axis]] (or [1] per tensor); zero_point like scale, int8.
Lower bit widths, groups and bit-packing extend this format in the quantization issue.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from optcli.errors import ModelFormatError
from optcli.formats.base import StoredTensor, check_finite, expect


class QuantizedTensor(StoredTensor):
    encoding = "quantized"

    def __init__(self, codes: np.ndarray, scale: np.ndarray, zero_point: np.ndarray | None,
                 axis: int | None, bits: int = 8):
        self.codes, self.scale, self.zero_point, self.axis, self.bits = (
            codes, scale, zero_point, axis, bits)
        self.shape = tuple(int(s) for s in codes.shape)

    def _broadcast(self, a: np.ndarray) -> np.ndarray:
        """A per-channel vector reshaped to broadcast against codes along `axis`."""
        if self.axis is None:
            return a.reshape(())
        shape = [1] * len(self.shape)
        shape[self.axis] = -1
        return a.reshape(shape)

    def decode(self) -> np.ndarray:
        q = self.codes.astype(np.float32)
        if self.zero_point is not None:
            q -= self._broadcast(self.zero_point.astype(np.float32))
        return q * self._broadcast(self.scale)

    def arrays(self) -> dict[str, np.ndarray]:
        out = {"codes": self.codes, "scale": self.scale}
        if self.zero_point is not None:
            out["zero_point"] = self.zero_point
        return out

    def params(self) -> dict[str, Any]:
        return {"bits": self.bits, "axis": self.axis, "symmetric": self.zero_point is None}

    @property
    def nonzeros(self) -> int:
        if self.zero_point is None:
            return int(np.count_nonzero(self.codes))
        return int(np.count_nonzero(self.decode()))

    def describe(self) -> str:
        gran = "tensor" if self.axis is None else "channel"
        sym = "" if self.zero_point is None else " asym"
        return f"int{self.bits}/{gran}{sym}"

    @classmethod
    def from_stored(cls, name: str, shape: tuple[int, ...], dtype: str,
                    arrays: dict[str, np.ndarray], params: dict[str, Any]) -> "QuantizedTensor":
        bits, axis = params.get("bits"), params.get("axis")
        if bits != 8:
            raise ModelFormatError(f"tensor '{name}': quantized bits={bits!r} not supported "
                                   "(format version 1 stores int8)")
        if axis is not None and not (isinstance(axis, int) and 0 <= axis < len(shape)):
            raise ModelFormatError(f"tensor '{name}': quantization axis {axis!r} out of range")
        codes = expect(name, arrays, "codes", ("int8",), shape=shape)
        n = 1 if axis is None else shape[axis]
        scale = expect(name, arrays, "scale", ("float32",), shape=(n,))
        check_finite(name, scale)
        zp = None
        if not params.get("symmetric", True):
            zp = expect(name, arrays, "zero_point", ("int8",), shape=(n,))
        return cls(codes, scale, zp, axis, bits)
