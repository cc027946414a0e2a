"""Quantize one layer's weight: the stored tensor for a method and a grid, plus the numbers
the report gives about it. Dense weights go through grid.py (rtn) or gptq.py; a pruned (sparse)
weight keeps its pattern with per-row symmetric codes (zeros are never stored, so they stay
exactly zero).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from optcli.formats import SparseTensor, StoredTensor
from optcli.quantization.clip import clipped_grid
from optcli.quantization.error import relative_output_error, sqnr_db
from optcli.quantization.gptq import gptq
from optcli.quantization.grid import Spec, choose_grid, quantize, to_tensor


@dataclass(frozen=True)
class Solver:
    """How codes are chosen: round to nearest, or GPTQ with its settings."""

    gptq: bool = False
    damping: float = 0.01
    block_size: int = 128
    act_order: bool = False
    clip: bool = False           # rtn: search each group's clipping ratio (clip.py)


def quantize_dense(w: np.ndarray, spec: Spec, h: np.ndarray | None, solver: Solver,
                   layer: str) -> StoredTensor:
    """w (any shape >= 2-D, viewed as [rows, cols]) quantized; GPTQ needs h [cols, cols]."""
    w2 = w.reshape(w.shape[0], -1).astype(np.float64)
    if solver.gptq and h is not None:
        u, grid = gptq(w2, h, spec, solver.damping, solver.block_size, solver.act_order, layer,
                       solver.clip)
    else:
        grid = clipped_grid(w2, spec, h) if solver.clip else choose_grid(w2, spec)
        u = quantize(w2, grid)
    return to_tensor(w.shape, u, grid)


def quantize_sparse(old: SparseTensor, bits: int) -> SparseTensor:
    """Per-row symmetric codes for the stored nonzeros, |q| <= 2**(bits-1) - 1, held as int8
    values with a float32 scale per row (the sparse encoding's int8 variant)."""
    qmax = (1 << (bits - 1)) - 1
    vals = old.float_values().astype(np.float64)
    rows = old.row_ids()
    maxabs = np.zeros(old.rows)
    np.maximum.at(maxabs, rows, np.abs(vals))
    scale = np.where(maxabs > 0, maxabs / qmax, 1.0).astype(np.float32)
    scale = np.where(scale.astype(np.float64) * qmax < maxabs, np.nextafter(scale, np.inf), scale)
    codes = np.clip(np.rint(vals / scale[rows]), -qmax, qmax).astype(np.int8)
    return old.with_values(codes, scale.astype(np.float32))


def layer_numbers(w: np.ndarray, wq: np.ndarray, h: np.ndarray | None) -> dict:
    """The report's error columns: relative output error on calibration data (when h is
    known) and SQNR in dB of the output (or, without h, of the weights)."""
    w2, q2 = w.reshape(w.shape[0], -1).astype(np.float64), wq.reshape(w.shape[0], -1)
    rel = relative_output_error(w2, q2.astype(np.float64), h)
    db = sqnr_db(rel)
    out = {"sqnr_db": round(db, 3) if np.isfinite(db) else None,
           "error_on": "calibration" if h is not None else "weights",
           "max_abs_error": float(np.abs(w2 - q2).max(initial=0.0))}
    if h is not None:
        out["rel_output_error"] = float(rel)
    return out
