"""Per-layer sensitivity for `bits: auto`: the relative output error each layer alone adds
on calibration data at each candidate width (round to nearest), then mixed.assign_bits.

    e_l(b) = tr(dW_b H dW_b^T) / tr(W H W^T)        (error.py; H = X^T X / N of layer l)

Layers without a Hessian (grouped convolutions) use the relative weight error instead.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from optcli.errors import StepError
from optcli.graph import Node
from optcli.quantization.error import relative_output_error
from optcli.quantization.grid import Spec, choose_grid, dequantize, quantize, stored_nbytes
from optcli.quantization.mixed import CANDIDATES, assign_bits


def layer_sensitivity(w: np.ndarray, h: np.ndarray | None, specs: list[Spec]) -> dict[int, float]:
    """bits -> relative output error of w[rows, cols] under RTN at that spec."""
    out = {}
    for spec in specs:
        grid = choose_grid(w, spec)
        out[spec.bits] = relative_output_error(w, dequantize(quantize(w, grid), grid), h)
    return out


def auto_bits(nodes: list[Node], weights: dict[str, np.ndarray], hessians: dict,
              config: Any, spec_for: Callable[[Any, int], Spec]) -> tuple[dict[str, int], str]:
    """(layer -> bits, a note with the achieved average) meeting config.target_bits (average
    stored bits per weight, scales included) or config.target_bytes."""
    errors, sizes = [], []
    for n in nodes:
        w = weights[n.name]
        specs = [spec_for(config, b) for b in CANDIDATES]
        w2 = w.reshape(w.shape[0], -1).astype(np.float64)
        errors.append(layer_sensitivity(w2, hessians.get(n.name), specs))
        sizes.append({s.bits: stored_nbytes(w.shape, s) for s in specs})
    count = sum(weights[n.name].size for n in nodes)
    budget = (int(config.target_bytes) if config.target_bytes is not None
              else int(np.floor(config.target_bits * count / 8)))
    try:
        chosen = assign_bits(errors, sizes, budget)
    except ValueError as e:
        raise StepError(f"quantize: bits auto: {e}") from None
    total = sum(s[b] for s, b in zip(sizes, chosen))
    hist = {b: chosen.count(b) for b in sorted(set(chosen))}
    note = (f"bits auto: {8 * total / max(count, 1):.3f} bits/weight, {total} bytes "
            f"(budget {budget}); layers per width {hist}")
    return {n.name: b for n, b in zip(nodes, chosen)}, note
