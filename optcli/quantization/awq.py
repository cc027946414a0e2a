"""AWQ: activation-aware per-input-channel scaling before quantization (Lin, Tang, Tang, Yang,
Dang, Gan, Han, "AWQ: Activation-aware Weight Quantization for LLM Compression and
Acceleration", MLSys 2024, arXiv:2306.00978, section 3.2).

y = W x = (W diag(s)) (diag(1/s) x): scaling input channel j of W up by s_j gives its weights
a finer relative grid; the input is scaled down by the same s_j, so the float layer is
unchanged. s = a^alpha with a_j the input's RMS magnitude sqrt(H_jj) (the paper uses mean |x|;
the calibration statistics hold sum x^2, so RMS is the closest exact quantity), normalised by
sqrt(max s * min s); alpha is searched on {0, 1/n, ..., (n-1)/n} minimising the exact output
error tr(dW H dW^T) of the effective weight Q(W diag(s)) diag(1/s) (error.py) summed over the
layers that read the same input (q/k/v, gate/up share one s). alpha = 0 is plain round to
nearest, so AWQ's layer error is never above RTN's on the calibration data.

Where 1/s goes (graph.py rewiring in awq_graph.py): folded into the producing layernorm /
rmsnorm's weight (and bias) when that norm feeds only the scaled layers; otherwise an explicit
`mul` node (x * (1/s), a float32 [in] tensor `<value>.awq_inv_scale`) before them.

    steps:
      - quantize: {method: awq, bits: 4, granularity: group, group_size: 128, awq_grid: 20}
"""

from __future__ import annotations

import numpy as np

from optcli.quantization.error import output_error
from optcli.quantization.grid import Spec, choose_grid, dequantize, quantize


def search_scale(weights: list[np.ndarray], specs: list[Spec], h: np.ndarray,
                 n_grid: int = 20) -> tuple[np.ndarray, float, float, float]:
    """(s [in], alpha, summed error at alpha, summed error of plain RTN) for layers w[out, in]
    (each with its grid spec) that share the input whose H [in, in] = X^T X / N is given."""
    act = np.sqrt(np.maximum(np.diag(h), 0.0))
    act = np.maximum(act, 1e-8 * max(float(act.max(initial=0.0)), 1e-30))   # no zero scale
    best = (np.ones_like(act), 0.0, np.inf)
    rtn = np.inf
    for k in range(n_grid):
        alpha = k / n_grid
        s = act ** alpha
        s = s / np.sqrt(s.max() * s.min())
        err = sum(output_error(rtn_effective(w, s, spec) - w, h)
                  for w, spec in zip(weights, specs))
        rtn = err if k == 0 else rtn
        if err < best[2]:
            best = (s, alpha, err)
    return best[0], best[1], best[2], rtn


def rtn_effective(w: np.ndarray, s: np.ndarray, spec: Spec) -> np.ndarray:
    """The effective weight Q(W diag(s)) diag(1/s) [out, in] under round to nearest."""
    ws = w * s[None, :]
    grid = choose_grid(ws, spec)
    return dequantize(quantize(ws, grid), grid) / s[None, :]
