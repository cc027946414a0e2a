"""Keep-mask helpers of the activation-aware methods (Wanda, SparseGPT), which compare weights
within one output row; N:M groups come from optcli/pruning/nm.py (`nm_mask`).
"""

from __future__ import annotations

import numpy as np

from optcli.errors import StepError
from optcli.pruning.nm import check_divisible


def row_mask(scores: np.ndarray, drop: int) -> np.ndarray:
    """Keep-mask [out, in] dropping exactly `drop` lowest-scored entries of every row."""
    keep = np.ones(scores.shape, bool)
    if drop:
        idx = np.argpartition(scores, drop - 1, axis=1)[:, :drop]       # [out, drop]
        np.put_along_axis(keep, idx, False, axis=1)
    return keep


def check_nm(w: np.ndarray, n: int, m: int, layer: str) -> None:
    """StepError unless 0 < n < m and the layer's inputs per row divide by m."""
    if not 0 < n < m:
        raise StepError(f"prune: N:M needs 0 < n < m, got n={n}, m={m}")
    check_divisible(w, m, layer)
