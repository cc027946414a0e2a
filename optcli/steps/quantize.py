"""Weight quantization: 2..8-bit integer codes per tensor, output channel or group of inputs,
by round to nearest, GPTQ or AWQ; mixed precision (`bits: auto`); or float16/bfloat16 storage.

- rtn: min/max grid, round to nearest; |w - decode(code)| <= scale / 2 for every weight
  (optcli/quantization/grid.py).
- gptq: column-by-column rounding with Hessian error compensation (Frantar et al., ICLR 2023;
  quantization/gptq.py): `damping`, `block_size` (lazy updates), `act_order`, groups.
- awq: activation-aware per-input-channel scales searched on calibration data (Lin et al.,
  MLSys 2024; quantization/awq.py), then `awq_solver` (rtn or gptq); 1/s is folded into the
  preceding layernorm/rmsnorm or applied by an inserted `mul` node (quantization/awq_graph.py).
- bits: auto: per-layer widths from the measured sensitivity meeting `target_bits` (average
  stored bits per weight, scales included) or `target_bytes` (quantization/mixed.py).
  Per-layer widths by hand: several quantize steps with `layers:` selectors.
- precision: float16 | bfloat16 stores floats instead (quantization/precision.py).

    calibration: {data: calib.npz, samples: 128}
    steps:
      - quantize: {bits: 8, granularity: channel, symmetric: true}
      - quantize: {method: gptq, bits: 4, granularity: group, group_size: 128, act_order: true}
      - quantize: {method: awq, bits: 3, granularity: group, group_size: 128}
      - quantize: {bits: auto, target_bits: 4.5, granularity: group}
      - quantize: {precision: bfloat16, layers: ["head"]}
      - quantize: {bits: 4, granularity: group, embeddings: true}   # token tables too

Storage (docs/format.md): 8-bit per-tensor/channel is the int8 layout; fewer bits or groups
use bit-packed unsigned codes with scales in `scale_dtype` (the int8 layout keeps float32).
A pruned layer stays sparse: per-row symmetric codes clipped to the bit width, held as int8
values, zeros exactly zero (GPTQ/AWQ do not apply to it). gptq, awq and auto need a
`calibration:` section (linear layers, and conv2d layers through im2col Hessians); with a
calibration section every layer's record gives its relative output error on calibration data,
otherwise the weights' SQNR. Codebook-shared weights are refused unless `requantize_shared`.
`sequential: true` calibrates the layers reading each input on the model quantized so far.
`clip: true` lets RTN, GPTQ and AWQ shrink each group's range where that lowers the output
error on calibration data (quantization/clip.py).
`embeddings: true` adds the embedding tables the selectors match, quantized by round to
nearest (a row of a table is one output channel); the runtime gathers from them packed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from optcli.errors import StepError
from optcli.formats import QuantizedTensor, SparseTensor
from optcli.formats.codebook import is_shared
from optcli.graph import Model, Node
from optcli.params import param
from optcli.quantization.grid import Spec, choose_grid, quantize, to_tensor
from optcli.quantization.hessians import layer_hessians
from optcli.quantization.layer import quantize_sparse
from optcli.quantization.model import quantize_model
from optcli.quantization.precision import to_precision
from optcli.steps.base import StepContext, StepRecord, input_groups, select_layers

DESCRIPTION = ("Weight quantization to 2..8 bits (RTN, GPTQ, AWQ; per tensor, channel or "
               "group; mixed precision with bits: auto) or float16/bfloat16 storage.")


def _bits_ok(v) -> bool:
    return v == "auto" or (isinstance(v, int) and not isinstance(v, bool) and 2 <= v <= 8)


@dataclass(frozen=True)
class Config:
    method: str = param("rtn", "round to nearest, GPTQ or AWQ (the last two need calibration)",
                        choices=("rtn", "gptq", "awq"))
    bits: int = param(8, "code width 2..8, or auto (per-layer, from target_bits/target_bytes)",
                      type=object, check=_bits_ok, check_doc="an integer 2..8 or 'auto'")
    granularity: str = param("channel", "one scale per tensor, output channel or group of "
                             "group_size inputs", choices=("channel", "tensor", "group"))
    group_size: int = param(128, "inputs per group (granularity group)",
                            check=lambda v: v >= 1, check_doc=">= 1")
    symmetric: bool = param(True, "symmetric (no zero point) or asymmetric range")
    scale_dtype: str = param("float16", "storage of scales (and the packed layout's only "
                             "choice that matters: < 8-bit or grouped codes; int8 keeps "
                             "float32)", choices=("float16", "float32"))
    precision: str = param("int", "int: integer codes; float16/bfloat16: store floats",
                           choices=("int", "float16", "bfloat16"))
    damping: float = param(0.01, "gptq: ridge on the Hessian diagonal, fraction of its mean "
                           "(x10 up to 3 times if still singular)", check=lambda v: v > 0,
                           check_doc="> 0")
    block_size: int = param(128, "gptq: columns per lazy-update block", check=lambda v: v >= 1,
                            check_doc=">= 1")
    act_order: bool = param(False, "gptq: quantize inputs by decreasing activation energy")
    awq_grid: int = param(20, "awq: alpha values searched in [0, 1)", check=lambda v: v >= 1,
                          check_doc=">= 1")
    awq_solver: str = param("rtn", "awq: how the scaled weights are quantized",
                            choices=("rtn", "gptq"))
    target_bits: float = param(None, "bits auto: average stored bits per weight (scales "
                               "included)", type=float, check=lambda v: v > 0, check_doc="> 0")
    target_bytes: int = param(None, "bits auto: total stored bytes of the selected weights",
                              type=int, check=lambda v: v > 0, check_doc="> 0")
    layers: list = param(["*"], "glob patterns of layer (node) names to quantize")
    exclude: list = param([], "glob patterns of layer names to leave alone")
    requantize_shared: bool = param(False, "quantize codebook-shared weights (after share) too")
    sequential: bool = param(False, "gptq, rtn+clip: calibrate the layers reading each input "
                             "on the model quantized so far (one calibration pass per input, "
                             "as GPTQ's reference code does), not all on the float model")
    clip: bool = param(False, "search each group's clipping ratio (0.55..1) for the lowest "
                       "output error on calibration data (weight error without), for rtn, "
                       "gptq and awq; clipped weights may then err by more than scale/2")
    embeddings: bool = param(False, "also quantize embedding tables (per row, or groups along "
                             "a row), by round to nearest whatever `method` says; the runtime "
                             "keeps them packed and decodes only the rows a batch reads")


def check(config: Config) -> str | None:
    """Problems with the combination of parameters, found when the YAML is parsed."""
    auto = config.bits == "auto"
    if auto and (config.target_bits is None) == (config.target_bytes is None):
        return "bits: auto needs exactly one of target_bits, target_bytes"
    if not auto and (config.target_bits is not None or config.target_bytes is not None):
        return "target_bits/target_bytes apply to bits: auto only"
    if config.precision != "int" and (config.method != "rtn" or auto):
        return f"precision {config.precision} stores floats; method and bits: auto do not apply"
    if config.act_order and config.method == "rtn":
        return "act_order applies to method gptq (or awq with awq_solver: gptq)"
    if config.sequential and (auto or config.method == "awq" or (
            config.method == "rtn" and not config.clip)):
        return ("sequential applies to method gptq, or rtn with clip: true, at fixed bits "
                "(AWQ searches its scales on the float model, as in its paper)")
    if config.embeddings and (auto or config.precision != "int"):
        return ("embeddings: true needs integer codes at fixed bits (use a separate quantize "
                "step for the tables)")
    return None


def needs_calibration(config: Config) -> bool:
    return config.precision == "int" and (config.method != "rtn" or config.bits == "auto")


def apply(model: Model, config: Config, context: StepContext) -> tuple[Model, StepRecord]:
    problem = check(config)
    if problem:
        raise StepError(f"quantize: {problem}")
    nodes = select_layers(model, config.layers, config.exclude)
    for n in nodes:
        if is_shared(model.tensors[n.inputs["weight"]]) and not config.requantize_shared:
            raise StepError(f"quantize: layer '{n.name}' is codebook-shared (share step); "
                            "set requantize_shared: true to quantize it anyway")
    record = StepRecord("quantize", {})
    if config.precision != "int":
        return _to_precision(model, nodes, config, record)
    if config.sequential and context.calibration is not None:
        model, record.layers, record.notes = _sequential(model, nodes, config, context)
    else:
        hessians = _hessians(model, nodes, config, context)
        model, record.layers, record.notes = quantize_model(model, nodes, config, hessians)
    if config.embeddings:
        model, tables = _quantize_tables(model, nodes, config)
        record.layers += tables
    return model, record


def _sequential(model: Model, nodes: list[Node], config: Config, context: StepContext
                ) -> tuple[Model, list[dict], list[str]]:
    """The layers in groups that read one input, in graph order; each group's Hessians come
    from a calibration pass through the model with every earlier group already quantized, so
    a layer compensates the error of the layers before it (Frantar et al. 2022, section 4)."""
    data = context.calibration()
    groups = input_groups(nodes)
    records: list[dict] = []
    notes: list[str] = []
    for group in groups:                # gptq / rtn+clip: the graph's nodes stay as they are
        model, recs, ns = quantize_model(model, group, config,
                                         layer_hessians(model, group, data))
        records += recs
        notes += ns
    notes.append(f"sequential: {len(groups)} calibration passes, each through the model "
                 "quantized so far")
    return model, records, notes


def _quantize_tables(model: Model, nodes: list[Node], config: Config
                     ) -> tuple[Model, list[dict]]:
    """Embedding tables matched by the selectors, by RTN at the step's grid (a table tied to
    a linear layer already quantized above is left as that layer made it)."""
    done = {n.inputs["weight"] for n in nodes}
    tables = [n for n in select_layers(model, config.layers, config.exclude, ops=("embedding",))
              if n.inputs["weight"] not in done]
    rtn = dataclasses.replace(config, method="rtn", act_order=False)
    model, records, _ = quantize_model(model, tables, rtn, {})
    return model, records


def _hessians(model: Model, nodes: list[Node], config: Config,
              context: StepContext) -> dict[str, np.ndarray]:
    """Calibration Hessians when a method needs them or a calibration section exists (then
    the report gives each layer's output error on it)."""
    if context.calibration is None:
        if needs_calibration(config):
            raise StepError(f"quantize: method {config.method} / bits {config.bits} needs a "
                            "calibration: section in the pipeline")
        return {}
    return layer_hessians(model, nodes, context.calibration())


def _to_precision(model: Model, nodes: list[Node], config: Config,
                  record: StepRecord) -> tuple[Model, StepRecord]:
    tensors = dict(model.tensors)
    for n in nodes:
        name = n.inputs["weight"]
        old = model.tensors[name]
        tensors[name] = to_precision(old, config.precision, n.name)
        w, d = old.decode(), tensors[name].decode()
        record.layers.append({"layer": n.name, "tensor": name, "method": config.precision,
                              "encoding": tensors[name].describe(), "bytes_before": old.nbytes,
                              "bytes_after": tensors[name].nbytes,
                              "max_abs_error": float(np.abs(w - d).max(initial=0.0))})
    return model.replace(tensors=tensors), record


def quantize_int8(w: np.ndarray, axis: int | None, symmetric: bool) -> QuantizedTensor:
    """RTN int8 codes of w (>= 1-D) with one scale per output channel (axis 0) or per tensor."""
    spec = Spec(8, "tensor" if axis is None else "channel", symmetric=symmetric)
    w2 = w.reshape(w.shape[0], -1).astype(np.float64)
    grid = choose_grid(w2, spec)
    return to_tensor(w.shape, quantize(w2, grid), grid)


def _quantize_sparse(old: SparseTensor) -> SparseTensor:
    """int8 per-row symmetric codes of a pruned tensor (the finetune tests' entry point)."""
    return quantize_sparse(old, 8)
