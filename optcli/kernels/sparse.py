"""Sparse execution of `linear` with a CSR weight (scipy.sparse, an optional dependency).

y[B, out] = x[B, in] @ W[out, in].T is computed as (W @ x.T).T, a sparse-dense product that
touches only the stored nonzeros: it wins over dense BLAS only at high sparsity (the runtime's
plan decides from the break-even densities in kernels/breakeven.py). The oracle is the
reference `linear` on the decoded dense weight.
"""

from __future__ import annotations

import numpy as np

from optcli.formats import SparseTensor

try:  # optional: without scipy every sparse tensor is decoded per call instead
    import scipy.sparse as _sp
except ImportError:  # pragma: no cover - exercised only where scipy is absent
    _sp = None


def available() -> bool:
    return _sp is not None


def to_csr(t: SparseTensor):
    """A scipy CSR matrix [rows, cols] with float32 values (int8 codes times row scales)."""
    vals = t.float_values()
    if t.layout == "csr":
        indices, indptr = t.indices.astype(np.int32), t.indptr.astype(np.int32)
    else:
        rows = t.row_ids()
        counts = np.bincount(rows, minlength=t.rows)
        indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
        flat = np.flatnonzero(np.unpackbits(t.mask, count=t.size))
        indices = (flat % t.cols).astype(np.int32)
    return _sp.csr_matrix((vals, indices, indptr), shape=(t.rows, t.cols))


def linear_csr(x: np.ndarray, weight, bias: np.ndarray | None = None) -> np.ndarray:
    """x[..., in] with a CSR weight [out, in] -> y[..., out] (float32)."""
    if x.shape[-1] != weight.shape[1]:
        raise ValueError(f"linear: x has {x.shape[-1]} features, weight expects "
                         f"{weight.shape[1]}")
    x2 = x.reshape(-1, x.shape[-1])
    y = np.ascontiguousarray((weight @ x2.T).T, dtype=np.float32)
    if bias is not None:
        y += bias
    return y.reshape(*x.shape[:-1], weight.shape[0])
