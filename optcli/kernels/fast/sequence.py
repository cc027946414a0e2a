"""Fast sequence ops: embedding gather, position ids, masked mean pooling, L2 normalisation.

meanpool is one batched matmul: mask[B, 1, T] @ x[B, T, D] sums the kept tokens, then a
divide by max(count, 1e-9) (an all-padding row gives zeros, not 0/0).
"""

from __future__ import annotations

import numpy as np

from optcli.kernels.reference.contract import check_ids, check_mask, check_rank


def embedding(ids: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """ids[B, T] -> weight[ids] [B, T, D] (one gather); an id outside [0, vocab) is a ValueError."""
    check_rank("embedding", "weight", weight, 2, "[vocab, D]")
    ids = np.asarray(ids)
    check_ids(ids, weight.shape[0])
    return np.take(np.asarray(weight, np.float32), ids, axis=0)


def positions(ids: np.ndarray, offset: int = 0) -> np.ndarray:
    """ids[B, T] -> [[offset, ..., offset + T - 1]] (int64, shape [1, T])."""
    T = np.shape(ids)[-1]
    return np.arange(offset, offset + T, dtype=np.int64)[None, :]


def meanpool(x: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """x[B, T, D], mask[B, T] (1 keep, 0 pad) -> masked mean over T -> y[B, D]."""
    check_rank("meanpool", "x", x, 3, "[B, T, D]")
    check_mask("meanpool", x, mask)
    x = np.asarray(x, np.float32)
    if mask is None:
        return x.mean(axis=1, dtype=np.float32)
    m = np.asarray(mask, np.float32)
    total = np.matmul(m[:, None, :], x)[:, 0]                     # [B, D]
    total /= np.maximum(m.sum(axis=1), np.float32(1e-9))[:, None]
    return total


def l2normalize(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """x / max(||x||_2, eps) over the last axis."""
    x = np.asarray(x, np.float32)
    norm = np.sqrt(np.einsum("...i,...i->...", x, x))
    return x / np.maximum(norm, np.float32(eps))[..., None]
