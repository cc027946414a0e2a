"""Reference sequence ops: token embedding, position ids, masked mean pooling, L2 normalisation.

meanpool is the sentence-transformers pooling: sum_t x[b, t] * mask[b, t] / max(sum_t mask, 1e-9)
(the 1e-9 floor makes an all-padding row give zeros instead of 0/0).
"""

from __future__ import annotations

import numpy as np

from optcli.kernels.reference.contract import check_ids, check_mask, check_rank


def embedding(ids: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """ids[B, T] -> weight[ids] [B, T, D]; an id outside [0, vocab) is a ValueError."""
    check_rank("embedding", "weight", weight, 2, "[vocab, D]")
    ids = np.asarray(ids)
    check_ids(ids, weight.shape[0])
    out = np.zeros(ids.shape + (weight.shape[1],), np.float32)
    for idx in np.ndindex(*ids.shape):
        out[idx] = weight[ids[idx]]
    return out


def positions(ids: np.ndarray, offset: int = 0) -> np.ndarray:
    """ids[B, T] -> [[offset, ..., offset + T - 1]] (int64, shape [1, T])."""
    T = np.asarray(ids).shape[-1]
    return np.array([[offset + t for t in range(T)]], dtype=np.int64)


def meanpool(x: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """x[B, T, D], mask[B, T] (1 keep, 0 pad) -> masked mean over T -> y[B, D]."""
    check_rank("meanpool", "x", x, 3, "[B, T, D]")
    check_mask("meanpool", x, mask)
    x = np.asarray(x, np.float64)
    m = np.ones(x.shape[:2]) if mask is None else np.asarray(mask, np.float64)
    total = (x * m[:, :, None]).sum(axis=1)
    count = np.maximum(m.sum(axis=1), 1e-9)[:, None]
    return (total / count).astype(np.float32)


def l2normalize(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """x / max(||x||_2, eps) over the last axis (eps guards the zero vector)."""
    x = np.asarray(x, np.float64)
    norm = np.sqrt((x ** 2).sum(axis=-1, keepdims=True))
    return (x / np.maximum(norm, eps)).astype(np.float32)
