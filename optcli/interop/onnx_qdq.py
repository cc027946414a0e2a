"""Compressed weights in ONNX as QDQ: int8 initializers + DequantizeLinear feeding the op.

    quantized  codes[shape] int8, scale[n], zero_point[n]   -> DequantizeLinear(codes, scale,
               (per channel along `axis`, or per tensor)        zero_point, axis)
    sparse     int8 values with scale[rows]                  -> dense int8 codes [shape] (zeros
                                                                where nothing is stored) +
                                                                DequantizeLinear(axis=0)
    sparse     float values                                  -> a float32 initializer (decoded)

DequantizeLinear computes (q - zero_point) * scale in float32, exactly optcli's decode, so an
onnxruntime session gives the same weights bit for bit while the file keeps 1 byte per weight.
A `linear` reads its weight transposed (ONNX MatMul wants B[in, out]): the codes are stored
transposed and the per-channel axis moves with them (optcli axis 0 of [out, in] is ONNX axis 1
of [in, out]). DequantizeLinear takes an axis from opset 13 on (export needs >= 17 anyway).

A W8A8 layer (`input_quant`, see docs/format.md) exports its input as the layer sees it:
static as QuantizeLinear -> DequantizeLinear (int8 with the layer's scale and zero point),
dynamic as per-row symmetric fake quantization from standard ops (Abs, ReduceMax, Div, Round,
Clip, Mul); the layer itself is the usual float op on DequantizeLinear weights.

onnxruntime note: at its default optimization level onnxruntime fuses DequantizeLinear ->
MatMul into MatMulNBits with `accuracy_level` 4, which also rounds the *activations* to int8
(max |logit error| ~1e-2 on the test models). For outputs equal to optcli's to float
tolerance, create the session with
    opts.add_session_config_entry("session.qdq_matmulnbits_accuracy_level", "1")
(keeps int8 weights, computes in float32); the tests do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from optcli.formats import QuantizedTensor, SparseTensor, StoredTensor

if TYPE_CHECKING:
    from optcli.interop.onnx_export import Emitter


def is_int8(t: StoredTensor) -> bool:
    """Stored tensors that export as int8 codes + DequantizeLinear: int8 per tensor or channel
    (float32 scales) and sparse int8 values. Bit-packed 2..7-bit or grouped codes export as
    their decoded float32 values (ONNX's int4 QDQ needs opset 21 and a block axis)."""
    if isinstance(t, QuantizedTensor):
        return not t.packed and t.codes.dtype == np.int8 and t.scale.dtype == np.float32
    return isinstance(t, SparseTensor) and t.scale is not None


def int8_parts(t: StoredTensor) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, int | None]:
    """(codes int8 [shape], scale [n], zero_point int8 [n] or None, axis or None)."""
    if isinstance(t, QuantizedTensor):
        return t.codes, t.scale, t.zero_point, t.axis
    codes = np.zeros((t.rows, t.cols), np.int8)         # [rows, cols]; zeros are not stored
    codes[t.coords()] = t.values
    return codes.reshape(t.shape), t.scale, None, 0


def dequantized(em: Emitter, name: str, transpose: bool = False) -> str:
    """The float value of int8 stored tensor `name` (its transpose for a 2-D `linear` weight)."""
    codes, scale, zp, axis = int8_parts(em.model.tensors[name])
    if transpose:
        codes = codes.T
        axis = None if axis is None else codes.ndim - 1 - axis
    per_tensor = axis is None
    tag = "T" if transpose else ""
    inputs = [em.const(codes, f"{name}.codes{'.T' * transpose}", key=("codes", name, tag)),
              em.const(scale.reshape(()) if per_tensor else scale, f"{name}.scale",
                       key=("scale", name))]
    if zp is not None:
        inputs.append(em.const(zp.reshape(()) if per_tensor else zp, f"{name}.zero_point",
                               key=("zp", name)))
    attrs = {} if per_tensor else {"axis": int(axis)}
    return em.op("DequantizeLinear", *inputs, **attrs)


def quantized_activation(em: Emitter, x: str, op: str, input_quant: str,
                         input_scale: float | None = None, input_zero_point: int = 0,
                         input_bits: int = 8) -> str:
    """The input of a W8A8 layer (ops.py `input_quant`) as the layer sees it, in float:
    static -> QuantizeLinear + DequantizeLinear (int8, round half to even, saturating: the
    same codes as optcli's); dynamic -> per-row (linear: last axis) or per-sample (conv2d)
    symmetric fake quantization from standard ops, s = max|x| / 127 (1 where 0)."""
    f32 = lambda v: em.const(np.array(v, np.float32))           # noqa: E731
    if input_quant == "static":
        s, z = f32(input_scale), em.const(np.array(input_zero_point, np.int8), "input_zp")
        return em.op("DequantizeLinear", em.op("QuantizeLinear", x, s, z), s, z)
    axes = [-1] if op == "linear" else [1, 2, 3]
    absx = em.op("Abs", x)
    amax = (em.op("ReduceMax", absx, axes=axes, keepdims=1) if em.opset < 18 else
            em.op("ReduceMax", absx, em.ints(*axes), keepdims=1))
    s = em.op("Div", amax, f32(127))
    s = em.op("Where", em.op("Greater", s, f32(0)), s, f32(1))
    q = em.op("Clip", em.op("Round", em.op("Div", x, s)), f32(-127), f32(127))
    return em.op("Mul", q, s)
