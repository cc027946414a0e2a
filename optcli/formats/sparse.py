"""Sparse storage of a mostly-zero tensor, viewed as a 2-D matrix [rows = shape[0], cols = rest].

Two layouts, the smaller one chosen by `SparseTensor.from_dense`:
- csr: values[nnz], indices[nnz] (column of each value), indptr[rows + 1]; index arrays use the
  narrowest unsigned dtype that holds their largest value (uint8/16/32/64).
- bitmask: mask = packbits(W != 0) (1 bit per weight) plus values[nnz] in row-major order.
  Cheaper than csr once density passes roughly 1 / (8 * index bytes).

Values are float32/float16, or int8 codes with a per-row float32 `scale` (after a quantize step:
value = code * scale[row], and a zero stays exactly zero).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from optcli.errors import ModelFormatError
from optcli.formats.base import StoredTensor, check_finite, expect

INDEX_DTYPES = ("uint8", "uint16", "uint32", "uint64")


def narrowest_uint(max_value: int) -> np.dtype:
    for name in INDEX_DTYPES:
        if max_value <= np.iinfo(name).max:
            return np.dtype(name)
    raise ValueError(f"index {max_value} too large")


class SparseTensor(StoredTensor):
    encoding = "sparse"

    def __init__(self, shape: tuple[int, ...], layout: str, values: np.ndarray,
                 indices: np.ndarray | None = None, indptr: np.ndarray | None = None,
                 mask: np.ndarray | None = None, scale: np.ndarray | None = None):
        self.shape, self.layout = tuple(shape), layout
        self.values, self.indices, self.indptr, self.mask, self.scale = (
            values, indices, indptr, mask, scale)

    @property
    def rows(self) -> int:
        return self.shape[0] if self.shape else 1

    @property
    def cols(self) -> int:
        return self.size // max(self.rows, 1)

    @classmethod
    def from_dense(cls, w: np.ndarray, layout: str = "auto") -> "SparseTensor":
        """Encode w (any float array, >= 1-D); zeros are dropped, everything else kept exactly."""
        m = w.reshape(w.shape[0], -1) if w.ndim else w.reshape(1, 1)
        nz = m != 0
        values = m[nz].astype(w.dtype if w.dtype in (np.float16, np.float32) else np.float32)
        if layout == "auto":
            csr_bytes = values.size * narrowest_uint(max(m.shape[1] - 1, 0)).itemsize
            layout = "csr" if csr_bytes < (m.size + 7) // 8 else "bitmask"
        if layout == "bitmask":
            return cls(w.shape, "bitmask", values, mask=np.packbits(nz.ravel()))
        rows_nz = nz.sum(axis=1)
        indptr = np.concatenate([[0], np.cumsum(rows_nz)]).astype(narrowest_uint(values.size))
        indices = np.nonzero(nz)[1].astype(narrowest_uint(max(m.shape[1] - 1, 0)))
        return cls(w.shape, "csr", values, indices=indices, indptr=indptr)

    def with_values(self, values: np.ndarray, scale: np.ndarray | None) -> "SparseTensor":
        """Same sparsity pattern, new values (e.g. int8 codes and per-row scales)."""
        return SparseTensor(self.shape, self.layout, values, self.indices, self.indptr,
                            self.mask, scale)

    def row_ids(self) -> np.ndarray:
        """Row index of every stored value, [nnz] (int64)."""
        if self.layout == "csr":
            return np.repeat(np.arange(self.rows), np.diff(self.indptr.astype(np.int64)))
        nz = np.unpackbits(self.mask, count=self.size).reshape(self.rows, self.cols)
        return np.nonzero(nz)[0]

    def float_values(self) -> np.ndarray:
        """Stored values as float32, scales applied, [nnz]."""
        if self.scale is None:
            return self.values.astype(np.float32)
        return self.values.astype(np.float32) * self.scale[self.row_ids()]

    def decode(self) -> np.ndarray:
        out = np.zeros((self.rows, self.cols), np.float32)
        if self.layout == "csr":
            out[self.row_ids(), self.indices.astype(np.int64)] = self.values
        else:
            out.reshape(-1)[np.unpackbits(self.mask, count=self.size).view(bool)] = self.values
        if self.scale is not None:
            out *= self.scale[:, None]      # int8 codes -> values, one scale per row
        return out.reshape(self.shape)

    def arrays(self) -> dict[str, np.ndarray]:
        out = {"values": self.values}
        for role in ("indices", "indptr", "mask", "scale"):
            if getattr(self, role) is not None:
                out[role] = getattr(self, role)
        return out

    def params(self) -> dict[str, Any]:
        return {"layout": self.layout}

    @property
    def nonzeros(self) -> int:
        return int(np.count_nonzero(self.values))

    def describe(self) -> str:
        kind = "int8" if self.scale is not None else ("f16" if self.values.dtype == np.float16
                                                      else "f32")
        return f"sparse {self.layout} {kind}"

    @classmethod
    def from_stored(cls, name: str, shape: tuple[int, ...], dtype: str,
                    arrays: dict[str, np.ndarray], params: dict[str, Any]) -> "SparseTensor":
        layout = params.get("layout")
        if layout not in ("csr", "bitmask") or not shape:
            raise ModelFormatError(f"tensor '{name}': sparse layout must be 'csr' or 'bitmask' "
                                   f"on a tensor of rank >= 1, got {layout!r}")
        values = expect(name, arrays, "values", ("float32", "float16", "int8"), ndim=1)
        check_finite(name, values)
        scale = None
        rows = shape[0]
        if values.dtype == np.int8:
            scale = expect(name, arrays, "scale", ("float32",), shape=(rows,))
            check_finite(name, scale)
        t = cls(shape, layout, values, scale=scale)
        cols = t.cols
        if layout == "bitmask":
            t.mask = expect(name, arrays, "mask", ("uint8",), shape=((t.size + 7) // 8,))
            if int(np.unpackbits(t.mask, count=t.size).sum()) != values.size:
                raise ModelFormatError(f"tensor '{name}': bitmask count != number of values")
            return t
        t.indptr = expect(name, arrays, "indptr", INDEX_DTYPES, shape=(rows + 1,))
        t.indices = expect(name, arrays, "indices", INDEX_DTYPES, shape=values.shape)
        ip = t.indptr.astype(np.int64)
        if ip[0] != 0 or ip[-1] != values.size or np.any(np.diff(ip) < 0):
            raise ModelFormatError(f"tensor '{name}': csr indptr is not a valid row pointer")
        if values.size and int(t.indices.max()) >= cols:
            raise ModelFormatError(f"tensor '{name}': csr column index out of range")
        return t
