"""Guards the prune step applies after any method: a floor of kept weights per layer.

A pruned layer left with fewer than `min_keep` nonzeros gets back its `min_keep` largest
|w| (original values), so no layer is cut off by accident. The one exception: with
`allow_layer_removal`, a layer the method emptied completely (typically global magnitude
ranking a layer of uniformly small weights) stays empty.
"""

from __future__ import annotations

import numpy as np


def keep_floor(original: np.ndarray, pruned: np.ndarray, min_keep: int,
               allow_layer_removal: bool) -> np.ndarray:
    """`pruned` with at least min(min_keep, size) of `original`'s largest |w| kept
    (same shape, float32); unchanged when it keeps enough or removal is allowed and it is
    empty."""
    kept = int(np.count_nonzero(pruned))
    if kept >= min_keep or (kept == 0 and allow_layer_removal):
        return pruned
    k = min(min_keep, original.size)
    top = np.argpartition(-np.abs(original).ravel(), k - 1)[:k]      # indices of the k largest
    out = pruned.astype(np.float32).ravel()
    out[top] = original.ravel()[top]
    return out.reshape(original.shape)
