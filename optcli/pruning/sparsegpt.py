"""SparseGPT: one-shot pruning with OBS weight reconstruction from the layer Hessian.

Frantar & Alistarh, "SparseGPT: Massive Language Models Can Be Accurately Pruned in One-Shot",
ICML 2023 (arXiv:2301.00774), Algorithm 1. For a linear layer with calibration inputs
X[rows, in], H = X^T X / rows + lambda I (lambda = damping * mean diag, a ridge that keeps H
invertible when inputs are correlated or rows are few). Columns are visited left to right in
blocks of `block_size`; when column j is pruned, its error e = w_j / [H^-1]_jj is pushed onto
the not-yet-visited columns along the row of the upper Cholesky factor U of H^-1
(the OBS update), at once inside the block and lazily (one matrix product) for later blocks.

The mask is chosen adaptively at the start of each block from w^2 / [U]_jj^2 (the OBS
saliency) of the already updated weights. Unstructured: per row, the block drops its share of
round(sparsity * in), so every row reaches exactly that count (the reference picks one
threshold over the whole block; per row keeps the sparsity exact, as Wanda's groups do).
N:M (`m > 0`): the m - n lowest of every group of m consecutive columns.

    steps:
      - prune: {method: sparsegpt, sparsity: 0.5, damping: 0.01, block_size: 128}
      - prune: {method: sparsegpt, n: 2, m: 4}
"""

from __future__ import annotations

from typing import Any

import numpy as np

from optcli.calibration import inverse_hessian_upper
from optcli.pruning.masks import check_nm, row_mask
from optcli.pruning.nm import nm_mask


def prune_layers(weights: list[np.ndarray], config: Any, inputs: list,
                 rng: np.random.Generator) -> list[np.ndarray]:
    out = []
    for w, s in zip(weights, inputs):
        if config.m:
            check_nm(w, config.n, config.m, s.layer)
        u = inverse_hessian_upper(s.hessian / max(s.rows, 1), config.damping, s.layer)
        out.append(prune(w, u, config.sparsity, config.block_size, config.n, config.m))
    return out


def prune(w: np.ndarray, u: np.ndarray, sparsity: float, block_size: int = 128,
          n: int = 0, m: int = 0) -> np.ndarray:
    """w[out, in] pruned and reconstructed; u[in, in] upper with u^T u = H^-1.

    m > 0 selects N:M (keep n of every m columns, block_size rounded to a multiple of m);
    otherwise each row loses exactly round(sparsity * in) weights.
    """
    w = w.astype(np.float64)                      # a copy: the caller's array is untouched
    cols = w.shape[1]
    if m:
        block_size = max(m, block_size - block_size % m)
    for b0 in range(0, cols, block_size):
        b1 = min(b0 + block_size, cols)
        w1, u1 = w[:, b0:b1], u[b0:b1, b0:b1]     # w1 is a view: updates land in w
        d = np.diag(u1)                            # [B]
        saliency = w1 ** 2 / d[None, :] ** 2       # [out, B]
        if m:
            keep = nm_mask(saliency, n, m)
        else:
            drop = int(round(sparsity * b1)) - int(round(sparsity * b0))
            keep = row_mask(saliency, drop)
        err = np.zeros_like(w1)                    # [out, B] scaled errors (w - q) / d
        for i in range(b1 - b0):
            q = np.where(keep[:, i], w1[:, i], 0.0)
            err[:, i] = (w1[:, i] - q) / d[i]
            w1[:, i:] -= np.outer(err[:, i], u1[i, i:])   # OBS update inside the block
            w1[:, i] = q
        w[:, b1:] -= err @ u[b0:b1, b1:]           # lazy batch update of later columns
    return w.astype(np.float32)
