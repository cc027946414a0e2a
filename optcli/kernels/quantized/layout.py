"""The packed weight a quantized `linear` runs from, and how it is read out of a QuantizedTensor.

A weight W[rows = out, cols = in] is held as its stored codes plus per-group parameters:

    value[r, k] = (u[r, k] - zero[r, k // group]) * scale[r, k // group]

- codes: uint8 [rows, ceil(cols * bits / 8)], each row a separate bit stream in
  formats/bitpack.py's layout (MSB first; 4 bits: code 2j is the high nibble of byte j), rows
  padded to whole bytes; or, for the int8 format, int8 [rows, cols] (signed codes, bits = 8);
- scale: float32 [rows or 1, n_groups or 1], n_groups = ceil(cols / group);
- zero: [rows or 1, n_groups or 1] (uint8 or int8): the stored zero point, or for symmetric
  codes a [1, 1] constant, 2^(bits-1) for unsigned codes and 0 for signed int8 ones.
A row or column count of 1 in scale/zero broadcasts (per tensor, per channel). Codes and
per-channel parameters are views of the stored arrays: packing copies nothing large, so the
runtime holds the packed bytes, not float32.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class PackedWeight:
    codes: np.ndarray        # uint8 [rows, row_bytes] bit streams, or int8 [rows, cols]
    scale: np.ndarray        # float32 [rows | 1, n_groups | 1]
    zero: np.ndarray         # uint8/int8 [rows | 1, n_groups | 1]
    bits: int
    group: int               # codes per scale group (cols: one group per row)
    shape: tuple[int, int]   # logical (rows, cols)

    ndim = 2                 # read by the linear shape checks, like an array's

    @property
    def nbytes(self) -> int:
        return int(self.codes.nbytes + self.scale.nbytes + self.zero.nbytes)

    @classmethod
    def from_arrays(cls, codes: np.ndarray, scale: np.ndarray, zero_point: np.ndarray | None,
                    bits: int, group_size: int | None, cols: int) -> "PackedWeight":
        """The packed (unsigned, bit-stream) layout: codes uint8 [rows, row_bytes], scale
        [rows | 1, n_groups] (float32 or float16), zero_point uint8 like scale or None."""
        if not 2 <= bits <= 8:
            raise ValueError(f"packed codes have 2..8 bits, got {bits}")
        rows = codes.shape[0]
        if codes.dtype != np.uint8 or codes.shape[1] != (cols * bits + 7) // 8:
            raise ValueError(f"codes {codes.dtype} {list(codes.shape)} do not hold "
                             f"{cols} codes of {bits} bits per row")
        group = cols if not group_size else int(group_size)
        zero = (np.full((1, 1), 1 << (bits - 1), np.uint8) if zero_point is None
                else _matrix(zero_point))
        return cls(np.ascontiguousarray(codes), _matrix(scale, np.float32), zero, bits, group,
                   (rows, cols))

    @classmethod
    def from_int8(cls, codes: np.ndarray, scale: np.ndarray,
                  zero_point: np.ndarray | None) -> "PackedWeight":
        """The int8 layout: signed codes int8 [rows, cols], scale [rows] or [1], zero point
        int8 like scale or None (symmetric)."""
        rows, cols = codes.shape
        zero = np.zeros((1, 1), np.int8) if zero_point is None else zero_point.reshape(-1, 1)
        return cls(np.ascontiguousarray(codes), _matrix(scale.reshape(-1, 1), np.float32),
                   np.ascontiguousarray(zero), 8, cols, (rows, cols))

    def __post_init__(self) -> None:
        n_groups = -(-self.shape[1] // self.group)
        for name, a in (("scale", self.scale), ("zero point", self.zero)):
            if a.ndim != 2 or a.shape[0] not in (1, self.shape[0]) or a.shape[1] not in (
                    1, n_groups):
                raise ValueError(f"{name} shape {list(a.shape)} does not fit "
                                 f"{self.shape[0]} rows x {n_groups} groups")


def _matrix(a: np.ndarray, dtype: Any = None) -> np.ndarray:
    """a as a C-contiguous 2-D array (a view when it already is one)."""
    a = np.asarray(a, dtype=dtype)
    return np.ascontiguousarray(a.reshape(a.shape[0] if a.ndim else 1, -1))


def from_tensor(t: Any) -> PackedWeight | None:
    """The PackedWeight of a 2-D QuantizedTensor, or None when its layout has no packed
    kernel (a scale along the input axis, another rank). Reads the int8 format (codes int8
    [out, in], scale per output channel or tensor) and the packed one (codes uint8 bit streams,
    `group_size`, scale [out, n_groups])."""
    if len(t.shape) != 2:
        return None
    rows, cols = t.shape
    if t.codes.dtype == np.int8 and t.codes.shape == (rows, cols):
        if getattr(t, "axis", 0) not in (0, None):
            return None
        return PackedWeight.from_int8(t.codes, t.scale, t.zero_point)
    if t.codes.dtype == np.uint8 and t.codes.ndim == 2 and t.codes.shape[0] == rows:
        return PackedWeight.from_arrays(t.codes, t.scale, t.zero_point, int(t.bits),
                                        getattr(t, "group_size", None), cols)
    return None
