"""GPTQ: quantize a layer column by column, pushing each column's rounding error onto the
columns not yet quantized through the inverse Hessian (Frantar, Ashkboos, Hoefler, Alistarh,
"GPTQ: Accurate Post-Training Quantization for Generative Pre-trained Transformers",
ICLR 2023, arXiv:2210.17323, Algorithm 1).

For y = W x and H = X^T X / N, GPTQ minimises tr(dW H dW^T) greedily: column j is rounded, its
error e = (w_j - q_j) / U_jj is subtracted from the later columns along row j of U, the upper
Cholesky factor of (H + lambda I)^-1 (calibration.inverse_hessian_upper, shared with SparseGPT:
lambda = damping * mean diag H, x10 retries, then a StepError naming the layer). Columns are
done in blocks of `block_size`; later blocks get the block's errors in one product ("lazy
batch updates"). `act_order` visits columns by decreasing H_jj (largest activations first).

Groups: without act_order a group's scale and zero point are chosen when its first column is
reached, from the already updated weights (as the reference); blocks are then aligned to whole
groups. With act_order the groups are "static": chosen from the original W before the
permutation, so groups stay consecutive in storage and no column index table is needed.

    steps:
      - quantize: {method: gptq, bits: 4, granularity: group, group_size: 128,
                   damping: 0.01, block_size: 128, act_order: true}
"""

from __future__ import annotations

import numpy as np

from optcli.calibration import inverse_hessian_upper
from optcli.errors import StepError
from optcli.quantization.clip import clipped_grid
from optcli.quantization.grid import Grid, Spec, choose_grid, params_from_range, quantize_column


def gptq(w: np.ndarray, h: np.ndarray, spec: Spec, damping: float = 0.01,
         block_size: int = 128, act_order: bool = False,
         layer: str = "layer", clip: bool = False) -> tuple[np.ndarray, Grid]:
    """Codes u uint8 [rows, cols] and their grid for w[rows, cols]; h[cols, cols] = X^T X / N.
    With `clip`, each group's range is the clipping search's (clip.py) on the weights as they
    stand when the group is reached (dynamic groups) or up front (static ones)."""
    rows, cols = w.shape
    if not np.isfinite(h).all():
        raise StepError(f"layer '{layer}': the input Hessian has NaN/Inf entries (non-finite "
                        "activations on the calibration data)")
    grid = clipped_grid(w, spec, h) if clip else choose_grid(w, spec)   # static grid (dynamic
                                                                        # groups overwrite it)
    perm = np.argsort(-np.diag(h), kind="stable") if act_order else np.arange(cols)
    dynamic = spec.group is not None and not act_order
    if dynamic:
        block_size = max(spec.group, block_size - block_size % spec.group)
    wp = w[:, perm].astype(np.float64)               # [rows, cols], a permuted copy
    u_inv = inverse_hessian_upper(h[np.ix_(perm, perm)], damping, layer)   # [cols, cols]
    codes = np.zeros((rows, cols), np.uint8)
    for b0 in range(0, cols, block_size):
        b1 = min(b0 + block_size, cols)
        err = _block(wp[:, b0:b1], u_inv[b0:b1, b0:b1], perm[b0:b1], grid, dynamic, codes,
                     h if clip else None)
        wp[:, b1:] -= err @ u_inv[b0:b1, b1:]        # lazy update of the later blocks
    return codes, grid


def _block(w1: np.ndarray, u1: np.ndarray, cols: np.ndarray, grid: Grid, dynamic: bool,
           codes: np.ndarray, clip_h: np.ndarray | None = None) -> np.ndarray:
    """Quantize the block w1[rows, B] in place (updates land in the caller's array); returns
    the scaled errors [rows, B] for the lazy update. clip_h: H, for clipped dynamic groups."""
    spec = grid.spec
    err = np.zeros_like(w1)
    for i, c in enumerate(cols):
        if dynamic and c % spec.group == 0:          # a group starts: grid from current w
            seg = w1[:, i:i + spec.group]
            if clip_h is None:
                s, z = params_from_range(seg.min(axis=1), seg.max(axis=1), spec)
            else:                                    # (no act_order: cols are in order)
                g = clipped_grid(seg, spec, clip_h[c:c + seg.shape[1], c:c + seg.shape[1]])
                s, z = g.scale[:, 0], g.zero[:, 0]
            grid.scale[:, c // spec.group], grid.zero[:, c // spec.group] = s, z
        s, z = grid.column(c)
        u = quantize_column(w1[:, i], s, z, spec)
        codes[:, c] = u
        err[:, i] = (w1[:, i] - (u - z) * s) / u1[i, i]
        w1[:, i:] -= np.outer(err[:, i], u1[i, i:])  # OBS update inside the block
    return err
