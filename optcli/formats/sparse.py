"""Sparse storage of a mostly-zero tensor, viewed as a 2-D matrix [rows = shape[0], cols = rest].

Three layouts, the smallest one chosen by `SparseTensor.from_dense`:
- csr: values[nnz], indices[nnz] (column of each value), indptr[rows + 1]; index arrays use the
  narrowest unsigned dtype that holds their largest value (uint8/16/32/64).
- gaps: values[nnz], indptr[rows + 1] and `gaps`, the columns as relative 4-bit indices
  (formats/gaps.py, Deep Compression's index coding): ~0.6 byte per nonzero at 10 % density.
- bitmask: mask = packbits(W != 0) (1 bit per weight) plus values[nnz] in row-major order.
  Cheapest once density passes roughly 15-20 %.
All three are held in memory as stored; the runtime turns them into a CSR matrix or a dense
buffer once (runtime.py), so the index coding costs nothing per call.

Values are float32/float16, or int8 codes with a per-row float32 `scale` (after a quantize step:
value = code * scale[row], and a zero stays exactly zero), or uint8/uint16 indices into a
float32 `codebook` [k] (after a share step, weight sharing: value = codebook[index]; zeros are
not stored, so they stay exactly zero and are never a centroid).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from optcli.errors import ModelFormatError
from optcli.formats.base import StoredTensor, check_finite, expect
from optcli.formats.gaps import decode_gaps, encode_gaps, gaps_nbytes

INDEX_DTYPES = ("uint8", "uint16", "uint32", "uint64")
LAYOUTS = ("csr", "gaps", "bitmask")


def narrowest_uint(max_value: int) -> np.dtype:
    for name in INDEX_DTYPES:
        if max_value <= np.iinfo(name).max:
            return np.dtype(name)
    raise ValueError(f"index {max_value} too large")


class SparseTensor(StoredTensor):
    encoding = "sparse"

    def __init__(self, shape: tuple[int, ...], layout: str, values: np.ndarray,
                 indices: np.ndarray | None = None, indptr: np.ndarray | None = None,
                 mask: np.ndarray | None = None, scale: np.ndarray | None = None,
                 gaps: np.ndarray | None = None, codebook: np.ndarray | None = None):
        self.shape, self.layout = tuple(shape), layout
        self.values, self.indices, self.indptr, self.mask, self.scale, self.gaps = (
            values, indices, indptr, mask, scale, gaps)
        self.codebook = codebook

    @classmethod
    def from_dense(cls, w: np.ndarray, layout: str = "auto") -> "SparseTensor":
        """Encode w (any float array, >= 1-D); zeros are dropped, everything else kept exactly.
        layout "auto" picks the layout with the fewest index bytes."""
        m = w.reshape(w.shape[0], -1) if w.ndim else w.reshape(1, 1)
        nz = m != 0
        values = m[nz].astype(w.dtype if w.dtype in (np.float16, np.float32) else np.float32)
        rows, cols = np.nonzero(nz)
        indptr = np.concatenate([[0], np.cumsum(nz.sum(axis=1))]).astype(
            narrowest_uint(values.size))
        col_dtype = narrowest_uint(max(m.shape[1] - 1, 0))
        if layout == "auto":
            cost = {"csr": values.size * col_dtype.itemsize + indptr.nbytes,
                    "gaps": gaps_nbytes(rows, cols) + indptr.nbytes,
                    "bitmask": (m.size + 7) // 8}
            layout = min(LAYOUTS, key=cost.__getitem__)
        if layout == "bitmask":
            return cls(w.shape, "bitmask", values, mask=np.packbits(nz.ravel()))
        if layout == "gaps":
            return cls(w.shape, "gaps", values, indptr=indptr, gaps=encode_gaps(rows, cols))
        return cls(w.shape, "csr", values, indices=cols.astype(col_dtype), indptr=indptr)

    def with_values(self, values: np.ndarray, scale: np.ndarray | None,
                    codebook: np.ndarray | None = None) -> "SparseTensor":
        """Same sparsity pattern, new values (e.g. int8 codes and per-row scales, or codebook
        indices and their codebook)."""
        return SparseTensor(self.shape, self.layout, values, self.indices, self.indptr,
                            self.mask, scale, self.gaps, codebook)

    def row_ids(self) -> np.ndarray:
        """Row index of every stored value, [nnz] (int64)."""
        return self.coords()[0]

    def coords(self) -> tuple[np.ndarray, np.ndarray]:
        """(row, column) of every stored value in storage (row-major) order, int64 [nnz]."""
        if self.layout == "bitmask":
            flat = np.flatnonzero(np.unpackbits(self.mask, count=self.size))
            return flat // self.cols, flat % self.cols
        rows = np.repeat(np.arange(self.rows), np.diff(self.indptr.astype(np.int64)))
        if self.layout == "csr":
            return rows, self.indices.astype(np.int64)
        return rows, decode_gaps(self.gaps, self.indptr)

    def float_values(self) -> np.ndarray:
        """Stored values as float32, scales or codebook applied, [nnz]."""
        if self.codebook is not None:
            return self.codebook[self.values]
        if self.scale is None:
            return self.values.astype(np.float32)
        return self.values.astype(np.float32) * self.scale[self.row_ids()]

    def decode(self) -> np.ndarray:
        out = np.zeros((self.rows, self.cols), np.float32)
        values = self.values if self.codebook is None else self.codebook[self.values]
        if self.layout == "bitmask":
            out.reshape(-1)[np.unpackbits(self.mask, count=self.size).view(bool)] = values
        else:
            out[self.coords()] = values
        if self.scale is not None:
            out *= self.scale[:, None]      # int8 codes -> values, one scale per row
        return out.reshape(self.shape)

    def arrays(self) -> dict[str, np.ndarray]:
        out = {"values": self.values}
        for role in ("indices", "indptr", "mask", "scale", "gaps", "codebook"):
            if getattr(self, role) is not None:
                out[role] = getattr(self, role)
        return out

    def params(self) -> dict[str, Any]:
        return {"layout": self.layout}

    @property
    def nonzeros(self) -> int:
        if self.codebook is not None:
            return int(np.count_nonzero(self.codebook[self.values]))
        return int(np.count_nonzero(self.values))

    def describe(self) -> str:
        kind = "int8" if self.scale is not None else ("f16" if self.values.dtype == np.float16
                                                      else "f32")
        if self.codebook is not None:
            kind = f"codebook{self.codebook.size}"
        return f"sparse {self.layout} {kind}"

    @classmethod
    def from_stored(cls, name: str, shape: tuple[int, ...], dtype: str,
                    arrays: dict[str, np.ndarray], params: dict[str, Any]) -> "SparseTensor":
        layout = params.get("layout")
        if layout not in LAYOUTS or not shape:
            raise ModelFormatError(f"tensor '{name}': sparse layout must be one of "
                                   f"{', '.join(LAYOUTS)} on a tensor of rank >= 1, "
                                   f"got {layout!r}")
        values = expect(name, arrays, "values", ("float32", "float16", "int8", "uint8",
                                                 "uint16"), ndim=1)
        check_finite(name, values)
        scale = None
        rows = shape[0]
        if values.dtype == np.int8:
            scale = expect(name, arrays, "scale", ("float32",), shape=(rows,))
            check_finite(name, scale)
        t = cls(shape, layout, values, scale=scale, codebook=_codebook(name, values, arrays))
        cols = t.cols
        if layout == "bitmask":
            t.mask = expect(name, arrays, "mask", ("uint8",), shape=((t.size + 7) // 8,))
            if int(np.unpackbits(t.mask, count=t.size).sum()) != values.size:
                raise ModelFormatError(f"tensor '{name}': bitmask count != number of values")
            return t
        t.indptr = expect(name, arrays, "indptr", INDEX_DTYPES, shape=(rows + 1,))
        ip = t.indptr.astype(np.int64)
        if ip[0] != 0 or ip[-1] != values.size or np.any(np.diff(ip) < 0):
            raise ModelFormatError(f"tensor '{name}': {layout} indptr is not a valid row pointer")
        if layout == "csr":
            t.indices = expect(name, arrays, "indices", INDEX_DTYPES, shape=values.shape)
            columns = t.indices
        else:
            t.gaps = expect(name, arrays, "gaps", ("uint8",), ndim=1)
            columns = decode_gaps(t.gaps, t.indptr)
            if isinstance(columns, str):
                raise ModelFormatError(f"tensor '{name}': {columns}")
        if values.size and int(columns.max()) >= cols:
            raise ModelFormatError(f"tensor '{name}': {layout} column index out of range")
        return t


def _codebook(name: str, values: np.ndarray, arrays: dict[str, np.ndarray]) -> np.ndarray | None:
    """The float32 codebook [k] that uint8/uint16 values index (None for float/int8 values)."""
    if values.dtype.kind != "u":
        return None
    book = expect(name, arrays, "codebook", ("float32",), ndim=1)
    check_finite(name, book)
    if values.size and (book.size == 0 or int(values.max()) >= book.size):
        raise ModelFormatError(f"tensor '{name}': sparse codebook index out of range "
                               f"(codebook has {book.size} entries)")
    return book
