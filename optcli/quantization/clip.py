"""Clipping search: shrink each group's range where that lowers the layer's output error.

A min/max grid spends its levels on the extreme weights of each group; shrinking the range to
r * [min, max] (r < 1) gives the bulk of the group a finer step at the cost of clipping the
extremes. For each (row, group) the ratio r in CLIP_RATIOS with the smallest error wins:
the output error on calibration data, d H_gg d^T with d the group's rounding error and H_gg
its block of H = X^T X / N (what AWQ's auto_clip minimises, Lin et al., MLSys 2024, section
3.3, on the block-diagonal of H), or without calibration the squared weight error. r = 1 is
plain round to nearest, so the chosen grid's error is never above RTN's.

Clipped weights break RTN's |w - value| <= scale / 2 bound (the step's `clip` is off by
default for that reason): their error is at most (1 - r) * max|w| + scale / 2.
"""

from __future__ import annotations

import numpy as np

from optcli.quantization.grid import (
    Grid,
    Spec,
    choose_grid,
    dequantize,
    group_ranges,
    params_from_range,
)
from optcli.quantization.grid import quantize as rtn_codes

CLIP_RATIOS = tuple(1.0 - 0.05 * k for k in range(10))      # 1.0, 0.95, ..., 0.55


def clipped_grid(w: np.ndarray, spec: Spec, h: np.ndarray | None) -> Grid:
    """The grid of w[rows, cols] with each (row, group)'s best clipping ratio."""
    if spec.granularity == "tensor":
        return choose_grid(w, spec)              # one range for everything: nothing to pick
    lo, hi = group_ranges(w, spec)
    grids = [Grid(*params_from_range(lo * r, hi * r, spec), spec, w.shape[1])
             for r in CLIP_RATIOS]
    errs = np.stack([_group_errors(w - dequantize(rtn_codes(w, g), g), g, h)
                     for g in grids])                       # [ratios, R, G]
    pick = np.argmin(errs, axis=0)[None]                    # the first minimum: ties keep r = 1
    scale, zero = (np.take_along_axis(np.stack([getattr(g, k) for g in grids]), pick, 0)[0]
                   for k in ("scale", "zero"))
    return Grid(scale, zero, spec, w.shape[1])


def _group_errors(d: np.ndarray, grid: Grid, h: np.ndarray | None) -> np.ndarray:
    """[R, G]: d_g H_gg d_g^T per row and group (sum of d^2 without h)."""
    g = grid.spec.group or d.shape[1]
    out = np.empty(grid.scale.shape)
    for j, c0 in enumerate(range(0, d.shape[1], g)):
        dg = d[:, c0:c0 + g]
        out[:, j] = (dg * dg).sum(axis=1) if h is None else (
            (dg @ h[c0:c0 + g, c0:c0 + g]) * dg).sum(axis=1)
    return out
