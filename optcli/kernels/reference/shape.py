"""Reference shape ops: flatten (ONNX Flatten), reshape (ONNX Reshape), transpose, concat.

These move data without arithmetic, so the reference returns fresh contiguous copies.
"""

from __future__ import annotations

import numpy as np

from optcli.kernels.reference.contract import check_perm, flatten_shape, reshape_target


def flatten(x: np.ndarray, axis: int = 1) -> np.ndarray:
    """x -> [prod(x.shape[:axis]), prod(x.shape[axis:])] (always 2-D, as ONNX)."""
    return np.array(x).reshape(flatten_shape(x.shape, axis))


def reshape(x: np.ndarray, shape: list[int]) -> np.ndarray:
    """0 copies the input dim at that index, -1 is inferred."""
    return np.array(x).reshape(reshape_target(x.shape, shape))


def transpose(x: np.ndarray, perm: list[int]) -> np.ndarray:
    check_perm(perm, x.ndim)
    return np.array(np.transpose(x, perm))


def concat(xs: list[np.ndarray], axis: int = 1) -> np.ndarray:
    if not xs:
        raise ValueError("concat: needs at least one input")
    try:
        return np.concatenate(xs, axis=axis)
    except (ValueError, np.exceptions.AxisError) as e:
        shapes = ", ".join(str(list(a.shape)) for a in xs)
        raise ValueError(f"concat: cannot join {shapes} on axis {axis} ({e})") from None
