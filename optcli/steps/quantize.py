"""Weight-only int8 quantization, round to nearest, per output channel or per tensor.

Symmetric: scale = max|w| / 127, code = clip(round(w / scale), -127, 127) (the range is kept
symmetric so -w quantizes to -code). Asymmetric: scale = (max - min) / 255 over a range that
always contains 0, zero_point = round(-128 - min / scale), so 0.0 is exactly representable.
Either way |w - decode(code)| <= scale / 2 for every weight.

    steps:
      - quantize: {bits: 8, granularity: channel, symmetric: true}

A sparse (pruned) tensor stays sparse: its values become int8 codes with one symmetric scale
per output row, and its zeros stay exactly zero. Lower bit widths, groups, GPTQ/AWQ and
activation quantization belong to the quantization issue.

Codebook-shared weights (after a share step) are refused, since int8 codes would replace the
few shared values, unless `requantize_shared: true` asks for exactly that.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from optcli.errors import StepError
from optcli.formats import QuantizedTensor, SparseTensor, StoredTensor
from optcli.formats.codebook import is_shared
from optcli.graph import Model
from optcli.params import param
from optcli.steps.base import StepContext, StepRecord, select_layers

DESCRIPTION = "Round-to-nearest int8 weight quantization, per output channel or per tensor."

QMAX_SYM = 127


@dataclass(frozen=True)
class Config:
    bits: int = param(8, "code width in bits", choices=(8,))
    granularity: str = param("channel", "one scale per output channel or per tensor",
                             choices=("channel", "tensor"))
    symmetric: bool = param(True, "symmetric (no zero point) or asymmetric range")
    layers: list = param(["*"], "glob patterns of layer (node) names to quantize")
    exclude: list = param([], "glob patterns of layer names to leave alone")
    requantize_shared: bool = param(False, "quantize codebook-shared weights (after share) too")


def apply(model: Model, config: Config, context: StepContext) -> tuple[Model, StepRecord]:
    tensors = dict(model.tensors)
    record = StepRecord("quantize", {})
    for node in select_layers(model, config.layers, config.exclude):
        name = node.inputs["weight"]
        old = model.tensors[name]
        if is_shared(old) and not config.requantize_shared:
            raise StepError(f"quantize: layer '{node.name}' is codebook-shared (share step); "
                            "set requantize_shared: true to quantize it anyway")
        w = old.decode()
        new = (_quantize_sparse(old) if isinstance(old, SparseTensor)
               else quantize_int8(w, axis=0 if config.granularity == "channel" else None,
                                  symmetric=config.symmetric))
        tensors[name] = new
        err = np.abs(new.decode() - w)
        record.layers.append({
            "layer": node.name, "tensor": name, "encoding": new.describe(),
            "bytes_before": old.nbytes, "bytes_after": new.nbytes,
            "max_abs_error": float(err.max(initial=0.0)),
            "rel_rmse": float(np.sqrt((err ** 2).mean()) / max(np.sqrt((w ** 2).mean()), 1e-30))})
        if isinstance(old, SparseTensor) and not config.symmetric:
            record.notes.append(f"{node.name}: sparse tensor quantized symmetric per row "
                                "(zeros are not stored, so no zero point is needed)")
    return model.replace(tensors=tensors), record


def quantize_int8(w: np.ndarray, axis: int | None, symmetric: bool) -> QuantizedTensor:
    """RTN int8 codes of w with scales per slice along `axis` (None = one scale)."""
    red = tuple(i for i in range(w.ndim) if i != axis) if axis is not None else None
    keep = axis is not None
    if symmetric:
        scale = _safe(np.abs(w).max(axis=red, keepdims=keep) / QMAX_SYM)
        codes = np.clip(np.rint(w / scale), -QMAX_SYM, QMAX_SYM).astype(np.int8)
        return QuantizedTensor(codes, _vec(scale), None, axis)
    lo = np.minimum(w.min(axis=red, keepdims=keep), 0.0)
    hi = np.maximum(w.max(axis=red, keepdims=keep), 0.0)
    scale = _safe((hi - lo) / 255.0)
    zp = np.clip(np.rint(-128.0 - lo / scale), -128, 127)
    codes = np.clip(np.rint(w / scale) + zp, -128, 127).astype(np.int8)
    return QuantizedTensor(codes, _vec(scale), _vec(zp).astype(np.int8), axis)


def _quantize_sparse(old: SparseTensor) -> StoredTensor:
    """Per-row symmetric int8 codes for the stored nonzeros; the pattern is unchanged."""
    vals = old.float_values()
    rows = old.row_ids()
    maxabs = np.zeros(old.rows, np.float32)
    np.maximum.at(maxabs, rows, np.abs(vals))
    scale = _safe(maxabs / QMAX_SYM)
    codes = np.clip(np.rint(vals / scale[rows]), -QMAX_SYM, QMAX_SYM).astype(np.int8)
    return old.with_values(codes, scale.astype(np.float32))


def _safe(scale: np.ndarray) -> np.ndarray:
    """All-zero slices get scale 1 so that codes are 0 and nothing divides by zero."""
    return np.where(scale > 0, scale, 1.0).astype(np.float32)


def _vec(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(a, np.float32).reshape(-1))
