"""Integer-quantized storage: codes of 2..8 bits with scales (and zero points) per tensor, per
output channel or per group of inputs.

Two layouts, told apart by the params:

int8 (bits = 8, no group_size; the format of every int8 file written so far):
    codes int8 [shape]; scale float32 [n] (n = shape[axis], or 1 when axis is null);
    zero_point int8 [n] when asymmetric.
    value = (code - zero_point) * scale, broadcast along `axis` (symmetric: zero_point = 0).

packed (bits < 8, or group_size set): the weight viewed as W[rows = shape[0],
cols = prod(shape[1:])]; a group is g = group_size consecutive columns of one row
(n_groups = ceil(cols / g); per channel n_groups = 1; per tensor the scale is [1, 1]).
    codes uint8 [rows, ceil(cols * bits / 8)]: unsigned codes u in [0, 2**bits - 1], each row
        bit-packed on its own (formats/rowpack.py: MSB first, row padded to whole bytes)
    scale [rows, n_groups] (per tensor [1, 1]) in `scale_dtype` (float32 or float16)
    zero_point uint8 [rows, n_groups] (per tensor [1, 1]) when asymmetric, every value < 2**bits
    symmetric:  value = (u - 2**(bits-1)) * scale[r, c // g]   (writers keep u >= 1, so the
                range -(2**(bits-1) - 1) .. 2**(bits-1) - 1 is symmetric)
    asymmetric: value = (u - zero_point[r, c // g]) * scale[r, c // g]

`decode()` is the reference decoder: the oracle the fast packed kernels are tested against.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from optcli.errors import ModelFormatError
from optcli.formats.base import StoredTensor, check_finite, expect
from optcli.formats.rowpack import pack_rows, row_nbytes, unpack_rows

SCALE_DTYPES = ("float32", "float16")


class QuantizedTensor(StoredTensor):
    encoding = "quantized"

    def __init__(self, codes: np.ndarray, scale: np.ndarray, zero_point: np.ndarray | None,
                 axis: int | None, bits: int = 8, group_size: int | None = None,
                 shape: tuple[int, ...] | None = None):
        self.codes, self.scale, self.zero_point, self.axis, self.bits = (
            codes, scale, zero_point, axis, bits)
        self.group_size = group_size
        self.shape = tuple(int(s) for s in (codes.shape if shape is None else shape))

    @classmethod
    def from_codes(cls, shape: tuple[int, ...], u: np.ndarray, scale: np.ndarray,
                   zero_point: np.ndarray | None, bits: int, group_size: int | None,
                   axis: int | None) -> "QuantizedTensor":
        """The packed layout from unsigned codes u[rows, cols] (uint8, < 2**bits)."""
        return cls(pack_rows(u, bits), scale, zero_point, axis, bits, group_size, tuple(shape))

    @property
    def packed(self) -> bool:
        return packed_layout(self.bits, self.group_size)

    def unsigned_codes(self) -> np.ndarray:
        """Packed layout: the codes u as uint8 [rows, cols]."""
        return unpack_rows(self.codes, self.bits, self.cols)

    def column_params(self) -> tuple[np.ndarray, np.ndarray]:
        """Packed layout: (scale, offset) per weight, float32 [rows or 1, cols], offset being
        2**(bits-1) (symmetric) or the zero point."""
        g = self.group_size or self.cols
        scale = np.repeat(self.scale.astype(np.float32), g, axis=1)[:, :self.cols]
        if self.zero_point is None:
            return scale, np.full((1, 1), float(1 << (self.bits - 1)), np.float32)
        zp = np.repeat(self.zero_point.astype(np.float32), g, axis=1)[:, :self.cols]
        return scale, zp

    def decode(self) -> np.ndarray:
        if self.packed:
            scale, offset = self.column_params()
            q = self.unsigned_codes().astype(np.float32) - offset          # [rows, cols]
            return (q * scale).reshape(self.shape)
        q = self.codes.astype(np.float32)
        if self.zero_point is not None:
            q -= self._broadcast(self.zero_point.astype(np.float32))
        return q * self._broadcast(self.scale)

    def _broadcast(self, a: np.ndarray) -> np.ndarray:
        """int8 layout: a per-channel vector reshaped to broadcast along `axis`."""
        if self.axis is None:
            return a.reshape(())
        shape = [1] * len(self.shape)
        shape[self.axis] = -1
        return a.reshape(shape)

    def arrays(self) -> dict[str, np.ndarray]:
        out = {"codes": self.codes, "scale": self.scale}
        if self.zero_point is not None:
            out["zero_point"] = self.zero_point
        return out

    def params(self) -> dict[str, Any]:
        out = {"bits": self.bits, "axis": self.axis, "symmetric": self.zero_point is None}
        if self.packed:         # int8 tensors keep exactly the params they always had
            out |= {"group_size": self.group_size, "scale_dtype": self.scale.dtype.name}
        return out

    @property
    def nonzeros(self) -> int:
        if self.zero_point is None and not self.packed:
            return int(np.count_nonzero(self.codes))
        return int(np.count_nonzero(self.decode()))

    def describe(self) -> str:
        gran = "tensor" if self.axis is None else (
            f"g{self.group_size}" if self.group_size else "channel")
        sym = "" if self.zero_point is None else " asym"
        return f"int{self.bits}/{gran}{sym}"

    @classmethod
    def from_stored(cls, name: str, shape: tuple[int, ...], dtype: str,
                    arrays: dict[str, np.ndarray], params: dict[str, Any]) -> "QuantizedTensor":
        bits, axis, g = params.get("bits"), params.get("axis"), params.get("group_size")
        if not (isinstance(bits, int) and not isinstance(bits, bool) and 2 <= bits <= 8):
            raise ModelFormatError(f"tensor '{name}': quantized bits={bits!r} not supported "
                                   "(2..8)")
        if g is not None and not (isinstance(g, int) and not isinstance(g, bool) and g >= 1):
            raise ModelFormatError(f"tensor '{name}': group_size {g!r} must be null or >= 1")
        if axis is not None and not (isinstance(axis, int) and 0 <= axis < len(shape)):
            raise ModelFormatError(f"tensor '{name}': quantization axis {axis!r} out of range")
        if packed_layout(bits, g):
            return _load_packed(name, shape, arrays, params, bits, g, axis)
        codes = expect(name, arrays, "codes", ("int8",), shape=shape)
        n = 1 if axis is None else shape[axis]
        scale = expect(name, arrays, "scale", ("float32",), shape=(n,))
        check_finite(name, scale)
        zp = None
        if not params.get("symmetric", True):
            zp = expect(name, arrays, "zero_point", ("int8",), shape=(n,))
        return cls(codes, scale, zp, axis, bits)


def packed_layout(bits: int, group_size: int | None) -> bool:
    """Whether (bits, group_size) use the packed layout rather than the int8 one."""
    return bits < 8 or group_size is not None


def _load_packed(name: str, shape: tuple[int, ...], arrays: dict[str, np.ndarray],
                 params: dict[str, Any], bits: int, g: int | None,
                 axis: int | None) -> QuantizedTensor:
    if not shape or axis not in (0, None) or (g is not None and axis != 0):
        raise ModelFormatError(f"tensor '{name}': packed quantization needs rank >= 1, axis 0 "
                               f"or null, and axis 0 with group_size (got axis {axis!r})")
    sdt = params.get("scale_dtype")
    if sdt not in SCALE_DTYPES:
        raise ModelFormatError(f"tensor '{name}': scale_dtype {sdt!r}; valid: "
                               f"{', '.join(SCALE_DTYPES)}")
    rows = shape[0]
    cols = math.prod(shape[1:])
    codes = expect(name, arrays, "codes", ("uint8",), shape=(rows, row_nbytes(cols, bits)))
    n = (rows if axis == 0 else 1, -(-cols // g) if g else 1)          # [rows or 1, groups]
    scale = expect(name, arrays, "scale", (sdt,), shape=n)
    check_finite(name, scale)
    zp = None
    if not params.get("symmetric", True):
        zp = expect(name, arrays, "zero_point", ("uint8",), shape=n)
        if zp.size and int(zp.max()) >= (1 << bits):
            raise ModelFormatError(f"tensor '{name}': zero_point {int(zp.max())} does not fit "
                                   f"{bits} bits")
    return QuantizedTensor(codes, scale, zp, axis, bits, g, shape)
