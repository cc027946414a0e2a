"""The encode step: lossless entropy coding of what is stored, applied when the model is written.

Deep Compression (Han, Mao & Dally, ICLR 2016) ends with Huffman coding (Huffman 1952) of
the quantized weights and the sparse index gaps: their distributions are far from uniform,
so a prefix code spends fewer bits on frequent symbols. Here every integer array a selected
tensor is stored as (int8 codes, uint8/uint16 CSR column indices and row pointers, bitmask
bytes) is Huffman-coded when that makes it smaller (optcli/coding/huffman.py, format
`entropy` in optcli/formats/entropy.py); float arrays (values, scales) stay as they are.
Decoding is exact, so outputs do not change at all; the file gets smaller. Loading decodes
once, and the runtime executes the decoded (inner) tensor, so latency and resident memory
are those of the model before `encode`.

    steps:
      - prune: {method: magnitude, sparsity: 0.9, scope: global}
      - quantize: {bits: 8, granularity: channel}
      - encode: {coder: huffman, tensors: all}

`encode` must be the last step (the module declares LAST = True and the pipeline parser
refuses a step after it): other steps inspect the stored form of a tensor, and an
entropy-coded one would be treated as a plain float tensor. A model that was already encoded
is unwrapped to its decoded tensors before any step runs (optcli/pipeline.py), and `encode`
re-codes what it gets from scratch.

The record has one row per tensor with integer arrays (bytes before and after), and under
`arrays` one entry per integer array: symbols, distinct symbols, bits per symbol before (the
dtype's width), empirical entropy (the bound for any per-symbol code), bits per symbol after
(code lengths and sub-stream offsets included), bytes before and after. An array is coded
only when that shrinks the file, counting the two extra .npz members it becomes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from optcli.coding import empirical_entropy
from optcli.coding.huffman import CODED_DTYPES
from optcli.formats import EntropyTensor, StoredTensor
from optcli.graph import Model
from optcli.io import member_bytes
from optcli.params import param
from optcli.steps.base import StepContext, StepRecord, select_layers

DESCRIPTION = ("Huffman-code the integer arrays tensors are stored as (codes, indices, "
               "bitmasks); lossless, smaller file; must be the last step.")

LAST = True          # config.parse_pipeline refuses any step after this one


@dataclass(frozen=True)
class Config:
    coder: str = param("huffman", "entropy coder (canonical Huffman, codes <= 16 bits)",
                       choices=("huffman",))
    tensors: str = param("all", "all: every stored tensor a selected layer reads (weight, "
                         "bias, ...); weights: only its weight", choices=("all", "weights"))
    layers: list = param(["*"], "glob patterns of layer (node) names whose tensors are coded")
    exclude: list = param([], "glob patterns of layer names to leave alone")


def apply(model: Model, config: Config, context: StepContext) -> tuple[Model, StepRecord]:
    tensors = dict(model.tensors)
    record = StepRecord("encode", {})
    for layer, name in _selected(model, config):
        inner = model.tensors[name].resident()
        if not any(a.dtype.name in CODED_DTYPES for a in inner.arrays().values()):
            tensors[name] = inner                         # float arrays only: nothing to code
            continue
        coded = _code(name, inner)
        tensors[name] = coded if coded.codes else inner
        record.layers.append({
            "layer": layer, "tensor": name, "encoding": tensors[name].describe(),
            "bytes_before": inner.nbytes, "bytes_after": tensors[name].nbytes,
            "arrays": _arrays(coded)})
    left = [r["tensor"] for r in record.layers if r["bytes_after"] == r["bytes_before"]]
    if len(left) == len(record.layers):
        record.notes.append("nothing to gain: no integer array whose coding shrinks the file")
    elif left:
        record.notes.append(f"left as stored (coding would not shrink the file): "
                            f"{', '.join(left)}")
    return model.replace(tensors=tensors), record


def _selected(model: Model, config: Config) -> list[tuple[str, str]]:
    """(layer, tensor) pairs, each stored tensor once, in graph order."""
    out: dict[str, str] = {}
    for node in select_layers(model, config.layers, config.exclude):
        roles = ["weight"] if config.tensors == "weights" else list(node.inputs)
        for role in roles:
            value = node.inputs.get(role)
            if isinstance(value, str) and value in model.tensors and value not in out:
                out[value] = node.name
    return [(layer, name) for name, layer in out.items()]


def _code(name: str, t: StoredTensor) -> EntropyTensor:
    """t with the arrays whose coding shrinks the file coded (none: nothing to gain). The
    cost of an array is exact: what io.write_npz makes of it (small members are deflated by
    the container anyway, so coding must beat deflate, and each extra array costs headers)."""
    cost = lambda arrays: sum(member_bytes(f"{name}::{r}", a)  # noqa: E731
                              for r, a in arrays.items())
    coded = EntropyTensor.code(t, cost)
    if coded.codes and _file_bytes(name, coded) < _file_bytes(name, coded.inner):
        return coded
    return EntropyTensor(coded.inner, {})


def _file_bytes(name: str, t: StoredTensor) -> int:
    """The tensor's share of the file: its members, exactly, plus its manifest params."""
    return sum(member_bytes(f"{name}::{role}", a) for role, a in t.arrays().items()) \
        + len(json.dumps(t.params()))


def _arrays(t: EntropyTensor) -> list[dict[str, Any]]:
    """One row per integer array of the inner tensor: what coding it gave (or would not)."""
    rows = []
    for role, a in t.inner.arrays().items():
        if a.dtype.name not in CODED_DTYPES:
            continue
        code = t.codes.get(role)
        after = a.nbytes if code is None else code.nbytes
        rows.append({
            "array": role, "dtype": a.dtype.name, "coded": code is not None,
            "symbols": int(a.size), "distinct": int(np.unique(a).size),
            "bits_before": 8 * a.itemsize, "entropy": round(empirical_entropy(a), 4),
            "bits_after": round(8 * after / max(a.size, 1), 4),
            "bytes_before": int(a.nbytes), "bytes_after": int(after)})
    return rows
