"""Forward and backward of the shape ops: flatten, reshape, transpose, concat.

They move data without arithmetic, so their gradients move it back: a reshape to the input's
shape, the inverse permutation, a split at the concat offsets.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from optcli.kernels.reference.contract import check_perm, flatten_shape, reshape_target


def flatten_forward(inputs: dict[str, Any], attrs: dict[str, Any]):
    x = inputs["x"]
    return x.reshape(flatten_shape(x.shape, attrs["axis"])), x.shape


def reshape_forward(inputs: dict[str, Any], attrs: dict[str, Any]):
    x = inputs["x"]
    return x.reshape(reshape_target(x.shape, attrs["shape"])), x.shape


def reshape_backward(dy, shape, needs: frozenset[str]) -> dict[str, np.ndarray]:
    return {"x": dy.reshape(shape)}


def transpose_forward(inputs: dict[str, Any], attrs: dict[str, Any]):
    x, perm = inputs["x"], attrs["perm"]
    check_perm(perm, x.ndim)
    return x.transpose(perm), np.argsort(perm)


def transpose_backward(dy, inverse, needs: frozenset[str]) -> dict[str, np.ndarray]:
    return {"x": dy.transpose(inverse)}


def concat_forward(inputs: dict[str, Any], attrs: dict[str, Any]):
    xs, axis = inputs["xs"], attrs["axis"]
    try:
        y = np.concatenate(xs, axis=axis)
    except (ValueError, np.exceptions.AxisError) as e:
        raise ValueError(f"concat: cannot join {[list(a.shape) for a in xs]} on axis {axis} "
                         f"({e})") from None
    return y, (np.cumsum([a.shape[axis] for a in xs])[:-1], axis)


def concat_backward(dy, saved, needs: frozenset[str]) -> dict[str, Any]:
    cuts, axis = saved
    return {"xs": np.split(dy, cuts, axis=axis)}
