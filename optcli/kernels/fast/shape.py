"""Fast shape ops: views wherever NumPy can give one, copies only when the layout demands.

Callers must not assume C-contiguous results (transpose returns a view; flatten of a
channel-major conv output copies, which is the one place that layout is materialised).
"""

from __future__ import annotations

import numpy as np

from optcli.kernels.reference.contract import check_perm, flatten_shape, reshape_target
from optcli.kernels.reference.shape import concat as _checked_concat


def flatten(x: np.ndarray, axis: int = 1) -> np.ndarray:
    """x -> [prod(x.shape[:axis]), prod(x.shape[axis:])] (ONNX Flatten)."""
    return np.reshape(x, flatten_shape(x.shape, axis))


def reshape(x: np.ndarray, shape: list[int]) -> np.ndarray:
    """ONNX Reshape: 0 copies the input dim, -1 is inferred."""
    return np.reshape(x, reshape_target(x.shape, shape))


def transpose(x: np.ndarray, perm: list[int]) -> np.ndarray:
    check_perm(perm, np.ndim(x))
    return np.transpose(x, perm)


def concat(xs: list[np.ndarray], axis: int = 1) -> np.ndarray:
    """np.concatenate already is the fast path; the reference adds the error message."""
    return _checked_concat(xs, axis)
