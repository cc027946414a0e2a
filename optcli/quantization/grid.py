"""Quantization grids: choose scales and zero points, quantize to unsigned codes, dequantize,
and build the stored tensor. Pure array functions (the `quantize` step orchestrates).

A weight is viewed as W[rows = shape[0], cols = prod(shape[1:])]. A grid holds, per row (or one
row for per-tensor) and per group of g consecutive columns, a scale s > 0 and an offset z:

    code  u = clip(rint(w / s) + z, lo, hi)      value = (u - z) * s
    symmetric:  z = 2**(bits-1), u in [1, 2**bits - 1]   (q = u - z in -(2**(b-1)-1)..2**(b-1)-1,
                s = max|w| / (2**(bits-1) - 1), so -w quantizes to -q)
    asymmetric: z = clip(rint(-lo / s), 0, 2**bits - 1), u in [0, 2**bits - 1],
                s = (max(w, 0) - min(w, 0)) / (2**bits - 1): the range always contains 0,
                so 0.0 is exactly representable
Scales are rounded *up* to their storage dtype (float32 or float16), which keeps
max|w| / s <= qmax, hence |w - value| <= s / 2 for every weight (no clipping error).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from optcli.formats.quantized import QuantizedTensor, packed_layout
from optcli.formats.rowpack import row_nbytes


@dataclass(frozen=True)
class Spec:
    """What grid a layer gets: bits 2..8; granularity tensor | channel | group."""

    bits: int = 8
    granularity: str = "channel"
    group_size: int = 128
    symmetric: bool = True
    scale_dtype: str = "float32"

    @property
    def group(self) -> int | None:
        return self.group_size if self.granularity == "group" else None

    @property
    def lo(self) -> int:
        return 1 if self.symmetric else 0

    @property
    def hi(self) -> int:
        return (1 << self.bits) - 1

    def label(self) -> str:
        gran = f"group{self.group_size}" if self.group else self.granularity
        return f"int{self.bits} {gran} {'sym' if self.symmetric else 'asym'}"


@dataclass
class Grid:
    """scale, zero: float64 [R, G] (R = rows, or 1 per tensor; G = groups, 1 unless grouped)."""

    scale: np.ndarray
    zero: np.ndarray
    spec: Spec
    cols: int

    def column(self, c: int) -> tuple[np.ndarray, np.ndarray]:
        """(scale, offset) of column c, each [R]."""
        j = c // self.spec.group if self.spec.group else 0
        return self.scale[:, j], self.zero[:, j]

    def expand(self) -> tuple[np.ndarray, np.ndarray]:
        """(scale, offset) per weight, [R, cols]."""
        g = self.spec.group or self.cols
        return (np.repeat(self.scale, g, axis=1)[:, :self.cols],
                np.repeat(self.zero, g, axis=1)[:, :self.cols])


def params_from_range(lo: np.ndarray, hi: np.ndarray, spec: Spec) -> tuple[np.ndarray, np.ndarray]:
    """(scale, offset) from each slice's min and max (any matching shapes), float64."""
    if spec.symmetric:
        scale = round_up(np.maximum(np.abs(lo), np.abs(hi)) / ((1 << (spec.bits - 1)) - 1), spec)
        return scale, np.full_like(scale, float(1 << (spec.bits - 1)))
    lo, hi = np.minimum(lo, 0.0), np.maximum(hi, 0.0)
    scale = round_up((hi - lo) / spec.hi, spec)
    return scale, np.clip(np.rint(-lo / scale), 0, spec.hi)


def round_up(scale: np.ndarray, spec: Spec) -> np.ndarray:
    """Scales as stored: zero-range slices get 1 (codes = offset, nothing divides by 0), the
    rest rounded up to the storage dtype so the error bound s/2 holds with the stored value."""
    scale = np.where(scale > 0, scale, 1.0)
    stored = scale.astype(spec.scale_dtype)
    stored = np.where(stored.astype(np.float64) < scale, np.nextafter(stored, np.inf), stored)
    if not np.isfinite(stored).all():
        raise ValueError(f"a scale overflows {spec.scale_dtype}; use scale_dtype float32")
    return stored.astype(np.float64)


def choose_grid(w: np.ndarray, spec: Spec) -> Grid:
    """Round-to-nearest (min/max) grid of w[rows, cols]."""
    scale, zero = params_from_range(*group_ranges(w, spec), spec)
    return Grid(scale, zero, spec, w.shape[1])


def group_ranges(w: np.ndarray, spec: Spec) -> tuple[np.ndarray, np.ndarray]:
    """(min, max) of w[rows, cols] per grid slice: [1, 1] per tensor, [rows, 1] per channel,
    [rows, G] per group."""
    if spec.granularity == "tensor":
        return np.full((1, 1), w.min(initial=0.0)), np.full((1, 1), w.max(initial=0.0))
    if spec.group:
        starts = np.arange(0, w.shape[1], spec.group)                  # [G]
        return np.minimum.reduceat(w, starts, axis=1), np.maximum.reduceat(w, starts, axis=1)
    return w.min(axis=1, keepdims=True), w.max(axis=1, keepdims=True)


def quantize(w: np.ndarray, grid: Grid) -> np.ndarray:
    """Unsigned codes u uint8 [rows, cols] of w on the grid (round to nearest)."""
    s, z = grid.expand()
    return np.clip(np.rint(w / s) + z, grid.spec.lo, grid.spec.hi).astype(np.uint8)


def quantize_column(w: np.ndarray, s: np.ndarray, z: np.ndarray, spec: Spec) -> np.ndarray:
    """Codes of one column w[rows] (float64 result, integral)."""
    return np.clip(np.rint(w / s) + z, spec.lo, spec.hi)


def dequantize(u: np.ndarray, grid: Grid) -> np.ndarray:
    """float64 [rows, cols] values of codes u."""
    s, z = grid.expand()
    return (u.astype(np.float64) - z) * s


def to_tensor(shape: tuple[int, ...], u: np.ndarray, grid: Grid) -> QuantizedTensor:
    """The stored tensor: the int8 layout for 8-bit tensor/channel grids (codes u - 128, so
    files read like every int8 file so far; float32 scales only), the packed layout otherwise."""
    spec = grid.spec
    axis = None if spec.granularity == "tensor" else 0
    scale = grid.scale.astype(spec.scale_dtype)
    zp = None if spec.symmetric else grid.zero
    if packed_layout(spec.bits, spec.group):
        if zp is not None:
            zp = zp.astype(np.uint8)
        return QuantizedTensor.from_codes(shape, u, scale, zp, spec.bits, spec.group, axis)
    codes = (u.astype(np.int16) - 128).astype(np.int8).reshape(shape)
    if zp is not None:
        zp = (zp.reshape(-1) - 128).astype(np.int8)
    return QuantizedTensor(codes, np.ascontiguousarray(scale.reshape(-1)), zp, axis, 8)


def stored_nbytes(shape: tuple[int, ...], spec: Spec) -> int:
    """Bytes of to_tensor's result for a weight of `shape`, without quantizing."""
    rows = shape[0]
    cols = math.prod(shape[1:])
    r = 1 if spec.granularity == "tensor" else rows
    n = r * (-(-cols // spec.group) if spec.group else 1)              # scales
    per_scale = np.dtype(spec.scale_dtype).itemsize + (0 if spec.symmetric else 1)
    if packed_layout(spec.bits, spec.group):
        return rows * row_nbytes(cols, spec.bits) + n * per_scale
    return rows * cols + n * per_scale
