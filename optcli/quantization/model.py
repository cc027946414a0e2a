"""The quantize step's walk over layers: bit widths (fixed or `auto`), AWQ scaling, the solver,
and one record per layer. Pure: returns new tensors/graph and records, never prints.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from optcli.errors import StepError
from optcli.formats import SparseTensor
from optcli.formats.quantized import packed_layout
from optcli.graph import Model, Node
from optcli.quantization import awq
from optcli.quantization.awq_graph import apply_input_scales
from optcli.quantization.grid import Spec
from optcli.quantization.layer import Solver, layer_numbers, quantize_dense, quantize_sparse
from optcli.quantization.sensitivity import auto_bits


def spec_for(config: Any, bits: int) -> Spec:
    """The grid of a layer at `bits`; the int8 layout (8 bits, no groups) keeps float32
    scales whatever scale_dtype says (its format has no other)."""
    grouped = config.granularity == "group"
    sd = config.scale_dtype if packed_layout(bits, config.group_size if grouped else None) \
        else "float32"
    return Spec(bits, config.granularity, config.group_size, config.symmetric, sd)


def quantize_model(model: Model, nodes: list[Node], config: Any,
                   hessians: dict[str, np.ndarray]) -> tuple[Model, list[dict], list[str]]:
    """(new model, per-layer records, notes) for the selected nodes."""
    weights = {n.name: model.tensors[n.inputs["weight"]].decode() for n in nodes}
    dense = [n for n in nodes if not isinstance(model.tensors[n.inputs["weight"]], SparseTensor)]
    notes: list[str] = []
    bits = {n.name: config.bits for n in nodes}
    if config.bits == "auto":
        bits, note = auto_bits(dense, weights, hessians, config, spec_for)
        bits |= {n.name: 8 for n in nodes if n not in dense}
        notes.append(note)
    scales = _awq_scales(dense, weights, hessians, config, bits) if config.method == "awq" else {}
    solver = Solver(config.method == "gptq" or (config.method == "awq"
                                                and config.awq_solver == "gptq"),
                    config.damping, config.block_size, config.act_order,
                    getattr(config, "clip", False))
    tensors = dict(model.tensors)
    records = []
    for n in nodes:
        name, w = n.inputs["weight"], weights[n.name]
        old, spec = model.tensors[name], spec_for(config, bits[n.name])
        h = hessians.get(n.name)
        s = next((sc for sc, layers in scales.values() if n.name in layers), None)
        if isinstance(old, SparseTensor):
            new, method = quantize_sparse(old, bits[n.name]), "rtn (sparse, per-row sym)"
            eff = new.decode()
        elif s is not None:                    # AWQ: quantize W diag(s), input scaled by 1/s
            hs = h / np.outer(s, s)
            new = _quantize(w * s, spec, hs, solver, n.name)
            clip = "+clip" if solver.clip else ""
            eff, method = new.decode() / s.astype(np.float32), f"awq+{config.awq_solver}{clip}"
        else:
            new = _quantize(w, spec, h, solver, n.name)
            eff = new.decode()
            base = "gptq" if solver.gptq and h is not None else "rtn"
            method = base + ("+clip" if solver.clip else "")
        tensors[name] = new
        records.append(_record(n, name, old, new, spec, method, w, eff, h))
    if scales:
        model, awq_notes = apply_input_scales(model, tensors, scales)
        return model, records, notes + awq_notes
    return model.replace(tensors=tensors), records, notes


def _quantize(w, spec, h, solver, layer):
    try:
        return quantize_dense(w, spec, h, solver, layer)
    except ValueError as e:
        raise StepError(f"quantize: layer '{layer}': {e}") from None


def _awq_scales(dense: list[Node], weights: dict, hessians: dict, config: Any,
                bits: dict) -> dict[str, tuple[np.ndarray, list[str]]]:
    """Input value -> (s [in], names of the dense linear layers reading it), one AWQ search
    per shared input."""
    groups: dict[str, list[Node]] = {}
    for n in dense:
        if n.op == "linear" and n.name in hessians:
            groups.setdefault(n.inputs["x"], []).append(n)
    out = {}
    for value, layers in groups.items():
        ws = [weights[n.name].astype(np.float64) for n in layers]
        specs = [spec_for(config, bits[n.name]) for n in layers]
        s, _, _, _ = awq.search_scale(ws, specs, hessians[layers[0].name], config.awq_grid)
        out[value] = (s, [n.name for n in layers])
    return out


def _record(n: Node, name: str, old, new, spec: Spec, method: str, w: np.ndarray,
            eff: np.ndarray, h: np.ndarray | None) -> dict:
    sparse = isinstance(old, SparseTensor)
    return {"layer": n.name, "tensor": name, "bits": spec.bits,
            "granularity": "row" if sparse else spec.granularity,
            "group_size": spec.group if not sparse else None,
            "symmetric": True if sparse else spec.symmetric, "method": method,
            "encoding": new.describe(), "bytes_before": old.nbytes, "bytes_after": new.nbytes,
            **layer_numbers(w, eff, h)}
