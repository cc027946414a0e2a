"""How much a quantized layer hurts: its output error on calibration data, or its weight SQNR.

For a layer y = W x with calibration inputs X[N, in] and H = X^T X / N, the mean squared output
error of W + dW is exactly (1/N) ||dW X^T||_F^2 = tr(dW H dW^T): no activations need to be kept
(the same identity GPTQ minimises, Frantar et al. 2022). Relative error divides by
tr(W H W^T), the mean squared output itself; SQNR = -10 log10(relative error).
"""

from __future__ import annotations

import math

import numpy as np


def output_error(dw: np.ndarray, h: np.ndarray) -> float:
    """tr(dW H dW^T) for dW[rows, cols], H[cols, cols] (mean squared output error)."""
    return float(np.einsum("ij,ij->", dw @ h, dw))


def relative_output_error(w: np.ndarray, wq: np.ndarray, h: np.ndarray | None) -> float:
    """tr(dW H dW^T) / tr(W H W^T); with no H (identity), the relative weight MSE."""
    dw = wq - w
    if h is None:
        return float((dw ** 2).sum() / max((w ** 2).sum(), 1e-300))
    return output_error(dw, h) / max(output_error(w, h), 1e-300)


def sqnr_db(relative_error: float) -> float:
    """Signal-to-quantization-noise ratio in dB (inf for an exact layer)."""
    return math.inf if relative_error <= 0 else -10.0 * math.log10(relative_error)
