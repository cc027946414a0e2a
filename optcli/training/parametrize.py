"""How each stored encoding trains: what the optimizer updates (`variable`), the float weight
the forward reads, the gradient of the variable, and how the result is stored again.

    stored as                  variable         forward weight        what holds
    dense float                W                W                     (float16: rounded)
    sparse, float values       W (dense view)   W * mask              mask, layout; zeros exact
    sparse, int8 + row scales  float shadow W   fakequant(W) * mask   mask, scales, int8 grid
    quantized int8             float shadow W   fakequant(W)          scales, zero points, grid
    quantized 2..8-bit packed  float shadow W   fakequant(W)          group scales, zero points
    codebook / sparse+codebook centroids C      C[index]              indices (and the mask)

Quantized layers use the straight-through estimator (Bengio, Leonard & Courville, 2013): the
gradient of round() is taken as 1, so the float shadow moves and the forward always sees its
quantized value on the unchanged scale grid; storing re-quantizes the shadow to codes
(quantization-aware training, Jacob et al., CVPR 2018). Shared weights train their centroids:
dL/dC[k] is the sum of dL/dW over the weights that index k (Han, Mao & Dally, Deep
Compression, ICLR 2016, §3.1). A factorized (lowrank) layer is two dense linear layers and
trains as such. A new encoding adds a class here and a line in `parametrize`.
"""

from __future__ import annotations

import numpy as np

from optcli.formats import CodebookTensor, DenseTensor, QuantizedTensor, SparseTensor, StoredTensor
from optcli.formats.codebook import unit_dim


class Dense:
    """A float tensor trains directly; a float16 one keeps a float32 shadow and the forward
    reads it rounded to float16, as stored (the straight-through estimator again)."""

    def __init__(self, t: DenseTensor):
        self.t, self.variable = t, t.data.astype(np.float32)

    def weight(self) -> np.ndarray:
        if self.t.data.dtype == np.float16:
            return self.variable.astype(np.float16).astype(np.float32)
        return self.variable

    def grad(self, g: np.ndarray) -> np.ndarray:
        return g

    def project(self) -> None:
        pass

    def store(self) -> StoredTensor:
        return DenseTensor(self.variable.astype(self.t.data.dtype))


class Masked:
    """A pruned tensor: only the stored positions train; the rest stay exactly zero. With
    int8 values the forward reads the shadow fake-quantized per row (QAT on the mask)."""

    def __init__(self, t: SparseTensor):
        self.t, self.coords = t, t.coords()
        self.keep = np.zeros((t.rows, t.cols), bool)
        self.keep[self.coords] = True
        self.keep = self.keep.reshape(t.shape)
        self.variable = t.decode()
        self.scale = None if t.scale is None else t.scale.reshape(
            (-1,) + (1,) * (len(t.shape) - 1))

    def weight(self) -> np.ndarray:
        if self.scale is None:
            return self.variable
        return fake_quant(self.variable, self.scale, None, -127, 127) * self.keep

    def grad(self, g: np.ndarray) -> np.ndarray:
        return g * self.keep

    def project(self) -> None:
        self.variable *= self.keep                   # decay or momentum never revive a zero

    def store(self) -> StoredTensor:
        if self.scale is None:
            flat = self.variable.reshape(self.t.rows, self.t.cols)
            return self.t.with_values(flat[self.coords].astype(self.t.values.dtype), None)
        codes = quant_codes(self.variable, self.scale, None, -127, 127)
        flat = codes.reshape(self.t.rows, self.t.cols)
        return self.t.with_values(flat[self.coords].astype(np.int8), self.t.scale.copy())


class Quantized:
    """int8 weights: a float shadow trains, the forward reads it fake-quantized (STE)."""

    def __init__(self, t: QuantizedTensor):
        self.t, self.variable = t, t.decode()
        self.scale = t._broadcast(t.scale)
        self.zp = None if t.zero_point is None else t._broadcast(t.zero_point.astype(np.float32))
        self.lo, self.hi = (-127, 127) if t.zero_point is None else (-128, 127)

    def weight(self) -> np.ndarray:
        return fake_quant(self.variable, self.scale, self.zp, self.lo, self.hi)

    def grad(self, g: np.ndarray) -> np.ndarray:
        return g                                    # straight-through: d round(x)/dx := 1

    def project(self) -> None:
        pass

    def store(self) -> StoredTensor:
        codes = quant_codes(self.variable, self.scale, self.zp, self.lo, self.hi)
        t = self.t
        return QuantizedTensor(codes.astype(np.int8), t.scale.copy(),
                               None if t.zero_point is None else t.zero_point.copy(),
                               t.axis, t.bits)


class PackedQuantized:
    """2..8-bit codes packed per row, scales per group: a float shadow W[rows, cols] trains,
    the forward reads it on the stored grid (u = clip(rint(w / s) + offset, lo, 2^bits - 1),
    w' = (u - offset) * s, offset 2^(bits-1) or the zero point); storing re-packs the codes
    with the same scales and zero points, so the grid never moves (QAT at low bit widths)."""

    def __init__(self, t: QuantizedTensor):
        self.t, self.variable = t, t.decode().reshape(t.rows, t.cols)
        self.scale, self.offset = t.column_params()          # [rows or 1, cols], broadcast
        self.lo, self.hi = (1 if t.zero_point is None else 0), (1 << t.bits) - 1

    def weight(self) -> np.ndarray:
        w = fake_quant(self.variable, self.scale, self.offset, self.lo, self.hi)
        return w.astype(np.float32).reshape(self.t.shape)

    def grad(self, g: np.ndarray) -> np.ndarray:
        return g.reshape(self.variable.shape)          # straight-through

    def project(self) -> None:
        pass

    def store(self) -> StoredTensor:
        t = self.t
        codes = quant_codes(self.variable, self.scale, self.offset, self.lo, self.hi)
        return QuantizedTensor.from_codes(
            t.shape, codes.astype(np.uint8), t.scale.copy(),
            None if t.zero_point is None else t.zero_point.copy(), t.bits, t.group_size, t.axis)


class Shared:
    """Codebook-shared weights (dense codebook tensor or sparse with codebook values): the
    centroids train, every index (and the mask) stays."""

    def __init__(self, t: StoredTensor):
        self.t = t
        if isinstance(t, CodebookTensor):
            self.index, self.d = t.index().astype(np.int64), unit_dim(t.shape, t.unit)
            self.positions = None
        else:
            self.index, self.d = t.values.astype(np.int64), 1
            self.positions = t.coords()
        self.variable = t.codebook.astype(np.float32)              # [k] or [k, d]

    def weight(self) -> np.ndarray:
        values = self.variable[self.index]
        if self.positions is None:
            return values.reshape(self.t.shape)
        w = np.zeros((self.t.rows, self.t.cols), np.float32)
        w[self.positions] = values
        return w.reshape(self.t.shape)

    def grad(self, g: np.ndarray) -> np.ndarray:
        """dL/dC[k] = sum of dL/dW over every weight (or unit) that indexes centroid k."""
        k = self.variable.shape[0]
        if self.positions is not None:
            g = g.reshape(self.t.rows, self.t.cols)[self.positions]
        if self.variable.ndim == 1:
            return np.bincount(self.index, weights=g.reshape(-1), minlength=k).astype(g.dtype)
        out = np.zeros_like(self.variable, dtype=g.dtype)
        np.add.at(out, self.index, g.reshape(-1, self.d))
        return out

    def project(self) -> None:
        pass

    def store(self) -> StoredTensor:
        book = np.ascontiguousarray(self.variable, np.float32)
        t = self.t
        if isinstance(t, CodebookTensor):
            return CodebookTensor(t.shape, t.codes.copy(), book, t.bits, t.unit)
        return t.with_values(t.values.copy(), None, codebook=book)


def fake_quant(w, scale, zp, lo: int, hi: int) -> np.ndarray:
    """The value w takes on the integer grid of `scale` (and zero point): decode(quantize(w))."""
    codes = quant_codes(w, scale, zp, lo, hi).astype(w.dtype)
    return (codes if zp is None else codes - zp) * scale


def quant_codes(w, scale, zp, lo: int, hi: int) -> np.ndarray:
    q = np.rint(w / scale) if zp is None else np.rint(w / scale) + zp
    return np.clip(q, lo, hi)


def parametrize(t: StoredTensor):
    """The trainable form of a stored tensor (its executed form: entropy coding removed)."""
    t = t.resident()
    if isinstance(t, CodebookTensor) or getattr(t, "codebook", None) is not None:
        return Shared(t)
    if isinstance(t, SparseTensor):
        return Masked(t)
    if isinstance(t, QuantizedTensor):
        return PackedQuantized(t) if t.packed else Quantized(t)
    if isinstance(t, DenseTensor) and t.data.dtype.kind == "f":
        return Dense(t)
    raise ValueError(f"cannot train a tensor stored as {t.describe()}")
