"""The W8A8 execution form: int8 weight codes ready for exact integer products, and the check
and kernel choice for layers whose `input_quant` attribute is not 'none' (optcli/ops.py).

A W8A8 layer computes (docs/format.md, "Quantized activations")

    y[n, o] = s_x[n] * s_w[o] * sum_k (xq[n, k] - z_x) * (wq[o, k] - z_w[o]) + bias[o]

with xq the int8 activation codes and wq the int8 weight codes; the sum is exact. `Int8Codes`
holds the weight side once: w'[o, k] = wq[o, k] - z_w[o] (exact integers in [-255, 255]) as
float32, laid out for BLAS, its row sums (the z_x correction) and the per-output scales.
NumPy has no int8 GEMM, so the fast tier multiplies these exact integers with float32 sgemm
in chunks short enough that no partial sum can round (kernels/fast/w8a8.py); the reference
tier casts them to int64 (kernels/reference/w8a8.py).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from optcli.errors import GraphError
from optcli.formats import QuantizedTensor, StoredTensor

EXACT_F32 = 1 << 24      # every integer of magnitude <= 2^24 is exact in float32
XQ_MAX = 128             # |int8 activation code| <= 128
CHUNK_MAX = 1024         # inner-dimension chunk of one sgemm: 1024 * 128 * 128 = 2^24


class Int8Codes:
    """A W8A8 layer's weight: w'[out, ...] = codes - zero_point (float32, exact integers)."""

    def __init__(self, t: QuantizedTensor):
        codes = t.codes.astype(np.float32)                         # [out, in] or [O, Cg, kh, kw]
        out = codes.shape[0]
        if t.zero_point is not None:
            zp = t.zero_point.astype(np.float32)
            codes -= zp.reshape((-1,) + (1,) * (codes.ndim - 1)) if t.axis == 0 else zp[0]
        flat = codes.reshape(out, -1)                              # [out, K]
        self.shape = tuple(codes.shape)
        # linear: the transposed view of a C-order [in, out] copy (sgemm is 5-14% faster
        # with that operand, see runtime._load); conv: [O, Cg, kh, kw] as stored
        self.w = np.ascontiguousarray(flat.T).T if codes.ndim == 2 else codes
        self.wmax = int(np.abs(flat).max(initial=0))               # <= 255
        self.col_sum = flat.astype(np.float64).sum(axis=1)         # [out], exact integers
        self.scale = np.broadcast_to(t.scale.astype(np.float32), (out,)).copy()

    @property
    def nbytes(self) -> int:
        return int(self.w.nbytes + self.col_sum.nbytes + self.scale.nbytes)

    def chunk(self) -> int:
        return exact_chunk(self.wmax)


def exact_chunk(wmax: int) -> int:
    """Longest inner chunk whose every partial sum is bounded by 2^24: exact in float32
    (k * 128 * wmax <= 2^24; 1024 for symmetric weights, 513 at worst)."""
    return max(1, min(CHUNK_MAX, EXACT_F32 // (XQ_MAX * max(wmax, 1))))


def quantized_input(node: Any) -> bool:
    """True for a W8A8 layer (linear/conv2d with input_quant static or dynamic)."""
    return node.attrs.get("input_quant", "none") != "none"


def int8_code_weights(model: Any) -> set[str]:
    """Names of the stored tensors that W8A8 layers read as their weight."""
    return {n.inputs["weight"] for n in model.graph.nodes if quantized_input(n)}


def check_w8a8(model: Any) -> None:
    """GraphError naming the node unless every W8A8 layer is executable: a static scale, an
    int8 weight with per-output-channel or per-tensor scales, not shared with float layers."""
    codes = int8_code_weights(model)
    for n in model.graph.nodes:
        where = f"node '{n.name}' ({n.op})"
        w = n.inputs.get("weight")
        if not quantized_input(n):
            if codes and (w in codes or any(v in codes for r, vs in n.inputs.items()
                                            if r != "weight" for v in _names(vs))):
                raise GraphError(f"{where}: reads int8 weight '{w}' of a W8A8 layer as a float "
                                 "tensor; W8A8 weights cannot be shared with float layers")
            continue
        mode = n.attrs["input_quant"]
        if mode == "static" and n.attrs.get("input_scale") is None:
            raise GraphError(f"{where}: input_quant 'static' needs input_scale")
        if mode == "dynamic" and n.attrs.get("input_zero_point", 0) != 0:
            raise GraphError(f"{where}: input_quant 'dynamic' is symmetric (input_zero_point 0)")
        t = model.tensors.get(w)
        problem = weight_problem(t.resident() if t is not None else None)
        if problem:
            raise GraphError(f"{where}: input_quant '{mode}' needs an int8-quantized weight; "
                             f"'{w}' {problem} (run a `quantize: {{bits: 8}}` step first)")


def _names(v: Any) -> list:
    return v if isinstance(v, list) else [v]


def weight_problem(t: StoredTensor | None) -> str | None:
    if not isinstance(t, QuantizedTensor):
        return "is not a stored quantized tensor" if t is None else f"is {t.describe()}"
    p = t.params()
    if p.get("bits") != 8 or t.codes.dtype != np.int8 or t.codes.shape != t.shape:
        return f"is {t.describe()} (not plain int8 codes)"
    if t.axis not in (0, None) or any(p.get(k) for k in ("group_size", "groups")):
        return "has scales that are not per output channel or per tensor"
    return None


def w8a8_kernel(kind: str, op: str) -> Callable:
    """The W8A8 kernel of tier `kind` ('fast' or 'reference') for op 'linear' or 'conv2d'."""
    if kind == "reference":
        from optcli.kernels.reference import w8a8 as tier
    else:
        from optcli.kernels.fast import w8a8 as tier
    return {"linear": tier.linear_w8a8, "conv2d": tier.conv2d_w8a8}[op]
