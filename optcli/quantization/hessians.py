"""Calibration Hessians H = X^T X / N of the selected layers, linear and conv2d, in one pass.

Linear layers use optcli.calibration.layer_inputs (streamed, padding left out, layers reading
one value share one H). A conv2d layer's weight [O, C, kh, kw] is a linear map of its input
patches, so its "X" is the im2col matrix [B * Ho * Wo, C * kh * kw] in the weight's flattened
(C, kh, kw) order, accumulated here the same way (float64 sums, divided by N at the end).
Grouped convolutions (groups > 1) get no Hessian: their layers fall back to round to nearest.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from optcli.calibration import layer_inputs, stream_values
from optcli.graph import Model, Node
from optcli.kernels.reference.contract import pair


def layer_hessians(model: Model, nodes: list[Node], data: dict[str, np.ndarray],
                   batch_size: int = 32) -> dict[str, np.ndarray]:
    """Node name -> H [cols, cols] float64 (X^T X / N) for every node that has one."""
    linear = [n for n in nodes if n.op == "linear"]
    conv = [n for n in nodes if n.op == "conv2d" and n.attrs.get("groups", 1) == 1]
    out: dict[str, np.ndarray] = {}
    if linear:
        stats = layer_inputs(model, linear, data, batch_size=batch_size, hessian=True)
        by_value: dict[int, np.ndarray] = {}
        for n in linear:
            s = stats[n.name]                        # shared by layers reading one value
            if id(s) not in by_value:
                by_value[id(s)] = s.hessian / max(s.rows, 1)
            out[n.name] = by_value[id(s)]
    if conv:
        out |= _conv_hessians(model, conv, data, batch_size)
    return out


def _conv_hessians(model: Model, nodes: list[Node], data: dict[str, np.ndarray],
                   batch_size: int) -> dict[str, np.ndarray]:
    values = sorted({n.inputs["x"] for n in nodes})
    sums = {n.name: 0.0 for n in nodes}
    rows = {n.name: 0 for n in nodes}
    for batch in stream_values(model, values, data, batch_size):
        for n in nodes:
            p = im2col(batch[n.inputs["x"]], model.tensors[n.inputs["weight"]].shape, n.attrs)
            sums[n.name] = sums[n.name] + p.T @ p
            rows[n.name] += p.shape[0]
    return {k: np.asarray(sums[k]) / max(rows[k], 1) for k in sums}


def im2col(x: np.ndarray, wshape: tuple[int, ...], attrs: dict) -> np.ndarray:
    """x[B, C, H, W] -> patches float64 [B * Ho * Wo, C * kh * kw] (zero padding, stride,
    dilation), column order (c, i, j) = the conv weight's flattened order."""
    _, c, kh, kw = wshape
    (sh, sw), (ph, pw), (dh, dw) = (pair(attrs.get(k, d)) for k, d in
                                    (("stride", 1), ("padding", 0), ("dilation", 1)))
    xp = np.pad(np.asarray(x, np.float64), ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    win = sliding_window_view(xp, ((kh - 1) * dh + 1, (kw - 1) * dw + 1), axis=(2, 3))
    win = win[:, :, ::sh, ::sw, ::dh, ::dw]                  # [B, C, Ho, Wo, kh, kw]
    return win.transpose(0, 2, 3, 1, 4, 5).reshape(-1, c * kh * kw)
