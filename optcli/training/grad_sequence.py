"""Forward and backward of embedding, positions, meanpool and l2normalize.

embedding   y = W[ids];  dW = scatter-add of dy rows into the rows of W named by ids
            (a token seen twice gets both gradients); ids are integers: no gradient.
positions   integer output, no gradient at all.
meanpool    y = sum_t x m / max(sum_t m, 1e-9);  dx = dy m / max(sum_t m, 1e-9)
l2normalize y = x / max(n, eps), n = ||x||;  dx = (dy - y sum(dy y)) / n  when n > eps,
            dy / eps otherwise (the divisor is then a constant).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from optcli.kernels.reference.contract import check_ids, check_mask, check_rank


def embedding_forward(inputs: dict[str, Any], attrs: dict[str, Any]):
    ids, w = np.asarray(inputs["ids"]), inputs["weight"]
    check_rank("embedding", "weight", w, 2, "[vocab, D]")
    check_ids(ids, w.shape[0])
    return w[ids], (ids, w.shape)


def embedding_backward(dy, saved, needs: frozenset[str]) -> dict[str, np.ndarray]:
    ids, shape = saved
    if "weight" not in needs:
        return {}
    dw = np.zeros(shape, dy.dtype)
    np.add.at(dw, ids.reshape(-1), dy.reshape(-1, shape[1]))      # repeated ids accumulate
    return {"weight": dw}


def positions_forward(inputs: dict[str, Any], attrs: dict[str, Any]):
    T = np.asarray(inputs["ids"]).shape[-1]
    return (attrs["offset"] + np.arange(T, dtype=np.int64))[None, :], None


def positions_backward(dy, saved, needs: frozenset[str]) -> dict[str, np.ndarray]:
    return {}


def meanpool_forward(inputs: dict[str, Any], attrs: dict[str, Any]):
    x, mask = inputs["x"], inputs.get("mask")
    check_rank("meanpool", "x", x, 3, "[B, T, D]")
    check_mask("meanpool", x, mask)
    m = np.ones(x.shape[:2], x.dtype) if mask is None else np.asarray(mask).astype(x.dtype)
    weight = m / np.maximum(m.sum(axis=1, keepdims=True), 1e-9)    # [B, T]
    return np.einsum("btd,bt->bd", x, weight), weight


def meanpool_backward(dy, weight, needs: frozenset[str]) -> dict[str, np.ndarray]:
    return {"x": dy[:, None, :] * weight[:, :, None]}


def l2normalize_forward(inputs: dict[str, Any], attrs: dict[str, Any]):
    x = inputs["x"]
    norm = np.sqrt((x * x).sum(axis=-1, keepdims=True))
    div = np.maximum(norm, attrs["eps"])
    y = x / div
    return y, (y, div, norm > attrs["eps"])


def l2normalize_backward(dy, saved, needs: frozenset[str]) -> dict[str, np.ndarray]:
    y, div, live = saved
    radial = np.where(live, y * (dy * y).sum(axis=-1, keepdims=True), 0)
    return {"x": (dy - radial) / div}
