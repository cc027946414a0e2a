"""The smoothquant step: migrate activation outliers into the weights before W8A8
(SmoothQuant, Xiao et al., ICML 2023; the math is in optcli/activations/smoothing.py).

Per input channel j of each group of linear layers reading one value X,
s_j = max|X_j|^alpha / max|W_j|^(1 - alpha) from the calibration set; W <- W diag(s) and X is
divided by s, folded into a layernorm/rmsnorm that feeds only the group, or by an inserted
`mul`. The float model computes the same function (up to float rounding); its activations
become easier to quantize and its weights a little harder. Run it before `quantize`, on float
weights; conv layers are left alone.

    calibration: {data: calib.npz, samples: 128}
    steps:
      - smoothquant: {alpha: 0.5}
      - quantize: {bits: 8}
      - activations: {mode: static}
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from optcli.activations.collect import ChannelMax, observe_inputs
from optcli.activations.smoothing import smooth_group, smoothing_scales
from optcli.errors import StepError
from optcli.graph import Model, Node
from optcli.lowrank.rewrite import weight_is_shared
from optcli.params import param
from optcli.steps.base import StepContext, StepRecord, select_layers

DESCRIPTION = ("SmoothQuant: scale input channels of linear layers so activation outliers "
               "move into the weights (before W8A8); float outputs unchanged.")


@dataclass(frozen=True)
class Config:
    alpha: float = param(0.5, "migration strength: 0 leaves activations alone, 1 moves all "
                         "of their range into the weights", check=lambda v: 0 <= v <= 1,
                         check_doc="0 <= alpha <= 1")
    layers: list = param(["*"], "glob patterns of layer (node) names to smooth (linear only)")
    exclude: list = param([], "glob patterns of layer names to leave alone")


def needs_calibration(config: Config) -> bool:
    return True


def apply(model: Model, config: Config, context: StepContext) -> tuple[Model, StepRecord]:
    if context.calibration is None:
        raise StepError("smoothquant needs a calibration: section")
    nodes = select_layers(model, config.layers, config.exclude, ops=("linear",))
    _check_float_weights(model, nodes)
    groups: dict[str, list[Node]] = {}
    for n in nodes:
        groups.setdefault(n.inputs["x"], []).append(n)
    stats = observe_inputs(model, nodes, context.calibration(), ChannelMax)
    record = StepRecord("smoothquant", {})
    out = model
    for value, layers in groups.items():
        xmax = stats[layers[0].name].amax                                   # [in]
        w = np.concatenate([model.tensors[n.inputs["weight"]].decode() for n in layers])
        s = smoothing_scales(xmax, np.abs(w).max(axis=0), config.alpha)
        out, how = smooth_group(out, value, layers, s)
        for n in layers:
            record.layers.append({"layer": n.name, "input": value, "applied": how,
                                  "act_max_ratio_before": _ratio(xmax),
                                  "act_max_ratio_after": _ratio(xmax / s),
                                  "scale_min": float(s.min()), "scale_max": float(s.max())})
    skipped = [n.name for n in select_layers(model, config.layers, config.exclude)
               if n.op != "linear"]
    if skipped:
        record.notes.append(f"conv layers left alone: {', '.join(skipped)}")
    return out, record


def _check_float_weights(model: Model, nodes: list[Node]) -> None:
    for n in nodes:
        t = model.tensors[n.inputs["weight"]]
        if t.encoding != "dense":
            raise StepError(f"smoothquant: layer '{n.name}' weight is {t.describe()}; smooth "
                            "float weights, before quantize/prune/share steps")
        if weight_is_shared(model, n):
            raise StepError(f"smoothquant: layer '{n.name}' shares its weight with another "
                            "node; exclude it")


def _ratio(amax: np.ndarray) -> float:
    """max over channels / median over channels of max|X_j|: how outlier-dominated X is."""
    med = float(np.median(amax))
    return float(amax.max() / med) if med > 0 else float("inf")
