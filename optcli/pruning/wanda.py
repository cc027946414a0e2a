"""Wanda: prune by weight magnitude times input activation norm, per output row.

Sun, Liu, Bair, Kolter, "A Simple and Effective Pruning Approach for Large Language Models",
ICLR 2024 (arXiv:2306.11695). The score of W[i, j] is |W[i, j]| * ||X_j||_2 where X[rows, in]
are the layer's calibration inputs; weights compete only within their output row (their
Sec. 3: per-output comparison groups), so every row loses exactly round(sparsity * in)
weights. With `m > 0` the pattern is N:M instead: the n best of every m consecutive inputs
stay. No weight update; the remaining weights are kept as they are.

    steps:
      - prune: {method: wanda, sparsity: 0.5, exclude: [head]}
      - prune: {method: wanda, n: 2, m: 4}
"""

from __future__ import annotations

from typing import Any

import numpy as np

from optcli.pruning.masks import check_nm, row_mask
from optcli.pruning.nm import nm_mask


def prune_layers(weights: list[np.ndarray], config: Any, inputs: list,
                 rng: np.random.Generator) -> list[np.ndarray]:
    return [prune(w, s.sq_norm, config, s.layer) for w, s in zip(weights, inputs)]


def prune(w: np.ndarray, sq_norm: np.ndarray, config: Any, layer: str = "") -> np.ndarray:
    """w[out, in] with the lowest |w| * sqrt(sq_norm) zeroed per row (or per N:M group)."""
    scores = np.abs(w.astype(np.float64)) * np.sqrt(sq_norm)[None, :]    # [out, in]
    if config.m:
        check_nm(w, config.n, config.m, layer)
        keep = nm_mask(scores, config.n, config.m)
    else:
        keep = row_mask(scores, int(round(config.sparsity * w.shape[1])))
    return np.where(keep, w, 0).astype(np.float32)
