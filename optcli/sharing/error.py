"""Reconstruction error of a shared (approximated) weight tensor, as the share step reports it."""

from __future__ import annotations

import numpy as np


def relative_error(w: np.ndarray, approx: np.ndarray) -> tuple[float, float]:
    """(||w - approx|| / ||w||, SQNR in dB = 10 log10(||w||² / ||w - approx||²)); an exact copy
    gives (0, inf), reported as None by callers that write JSON."""
    w64, e = np.asarray(w, np.float64), np.asarray(w, np.float64) - approx
    sig, err = float((w64 * w64).sum()), float((e * e).sum())
    rel = float(np.sqrt(err / sig)) if sig > 0 else 0.0
    sqnr = float(10 * np.log10(sig / err)) if err > 0 and sig > 0 else float("inf")
    return rel, sqnr
