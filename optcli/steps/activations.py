"""The activations step: quantize the inputs of int8-weight layers too, making them W8A8.

Sets the `input_quant` attributes (optcli/ops.py, docs/format.md) of the selected linear and
conv2d layers, whose weights must already be int8 (a `quantize: {bits: 8}` step first); the
runtime then multiplies int8 activation codes by the int8 weight codes with exact integer
sums (kernels/w8a8.py). Integer-arithmetic inference as in Jacob et al. 2018.

- static: one scale (and zero point unless symmetric) per layer input, chosen from the
  calibration set by an observer (optcli/activations/observers.py): min-max, percentile,
  MSE (Banner et al. 2019) or entropy/KL (TensorRT, Migacz 2017); one streamed pass;
- dynamic: symmetric, one scale per token (row of x[N, in]) or per sample of a conv input,
  computed at run time (LLM.int8(), Dettmers et al. 2022; ZeroQuant, Yao et al. 2022).

    calibration: {data: calib.npz, samples: 256}
    steps:
      - smoothquant: {alpha: 0.5}          # optional, transformers (before quantize)
      - quantize: {bits: 8}
      - activations: {mode: static, observer: percentile, percentile: 99.99}
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from optcli.activations.collect import observe_inputs
from optcli.activations.observers import OBSERVERS, Histogram, choose_range, qparams
from optcli.errors import StepError
from optcli.graph import Model, Node
from optcli.kernels.w8a8 import weight_problem
from optcli.params import param
from optcli.steps.base import StepContext, StepRecord, select_layers

DESCRIPTION = ("Quantize the inputs of int8 layers (W8A8): static with calibration observers "
               "or dynamic per token; exact integer accumulation.")


@dataclass(frozen=True)
class Config:
    mode: str = param("static", "static: calibrated scale per layer; dynamic: per token at "
                      "run time", choices=("static", "dynamic"))
    observer: str = param("minmax", "static: how the range is chosen from the calibration "
                          "histogram", choices=OBSERVERS)
    percentile: float = param(99.99, "observer percentile: the percentile of |x| kept",
                              check=lambda v: 50 < v <= 100, check_doc="50 < p <= 100")
    symmetric: bool = param(True, "static: symmetric range (zero point 0) or [min, max] "
                            "with a zero point (dynamic is always symmetric)")
    layers: list = param(["*"], "glob patterns of layer (node) names to quantize")
    exclude: list = param([], "glob patterns of layer names to leave alone")


def check(config: Config) -> str | None:
    if config.mode == "dynamic" and not config.symmetric:
        return "mode dynamic is symmetric per token; symmetric: false needs mode static"
    return None


def needs_calibration(config: Config) -> bool:
    return config.mode == "static"


def apply(model: Model, config: Config, context: StepContext) -> tuple[Model, StepRecord]:
    nodes = select_layers(model, config.layers, config.exclude)
    for n in nodes:
        problem = weight_problem(model.tensors[n.inputs["weight"]].resident())
        if problem:
            raise StepError(f"activations: layer '{n.name}' weight {problem}; W8A8 needs int8 "
                            "weights: put a `quantize: {bits: 8}` step before this one")
    record = StepRecord("activations", {})
    if config.mode == "dynamic":
        attrs = {n.name: {"input_quant": "dynamic"} for n in nodes}
        record.layers = [{"layer": n.name, "mode": "dynamic"} for n in nodes]
    else:
        attrs = _static_attrs(model, nodes, config, context, record)
    new_nodes = tuple(_with_input_quant(n, attrs.get(n.name)) for n in model.graph.nodes)
    return model.replace(graph=dataclasses.replace(model.graph, nodes=new_nodes)), record


def _static_attrs(model: Model, nodes: list[Node], config: Config, context: StepContext,
                  record: StepRecord) -> dict[str, dict]:
    """Per layer: the observer's range of its input on the calibration set -> scale, zp."""
    if context.calibration is None:
        raise StepError("activations: mode static needs a calibration: section")
    hists = observe_inputs(model, nodes, context.calibration(), Histogram)
    out = {}
    for n in nodes:
        h = hists[n.name]
        lo, hi = choose_range(h, config.observer, config.symmetric, config.percentile)
        scale, zp = qparams(lo, hi, config.symmetric)
        out[n.name] = {"input_quant": "static", "input_scale": scale, "input_zero_point": zp}
        record.layers.append({"layer": n.name, "mode": "static", "observer": config.observer,
                              "scale": scale, "zero_point": zp, "observed_min": h.lo,
                              "observed_max": h.hi, "range": [lo, hi]})
    return out


def _with_input_quant(n: Node, attrs: dict | None) -> Node:
    if attrs is None:
        return n
    keep = {k: v for k, v in n.attrs.items() if not k.startswith("input_")}
    return dataclasses.replace(n, attrs={**keep, **attrs})
