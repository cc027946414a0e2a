"""One lowering per ONNX op type: `IMPORT_OPS[op_type](imp, node, name)`, plus pattern fusion.

Each function reads the ONNX `node` (inputs are ONNX value names; `imp.const(v)` is the array
of a constant input, `imp.value(v)` the optcli value of any input) and appends optcli nodes
with `imp.emit(op, onnx_output, name, attrs, **inputs)`. A node it cannot map raises
`Unsupported(reason)`; the importer collects every such node into one error. The inverse of
`onnx_ops.py` (the exporter's lowerings), so optcli -> ONNX -> optcli round-trips the dense
CNN/MLP ops.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

import numpy as np

if TYPE_CHECKING:
    from optcli.interop.onnx_import import OnnxImporter


class Unsupported(Exception):
    """This node (with these attributes/inputs) has no optcli equivalent."""


def _attrs(imp: OnnxImporter, node: Any) -> dict[str, Any]:
    get = imp.onnx.helper.get_attribute_value
    out = {a.name: get(a) for a in node.attribute}
    return {k: (v.decode() if isinstance(v, bytes) else v) for k, v in out.items()}


def _const(imp: OnnxImporter, name: str, what: str) -> np.ndarray:
    c = imp.const(name)
    if c is None:
        raise Unsupported(f"{what} '{name}' must be an initializer or constant")
    return c


def _short(onnx_name: str) -> str:
    """'fc1/fc1.weight.T' -> 'fc1.weight': the tensor's own name without export decorations."""
    base = onnx_name.rsplit("/", 1)[-1]
    return base[:-2] if base.endswith(".T") else base


def _layer_name(weight: str, fallback: str) -> str:
    w = _short(weight)
    return w[: -len(".weight")] if w.endswith(".weight") else fallback


# ----------------------------------------------------------------------------- dense layers

def _linear(imp: OnnxImporter, out: str, name: str, x: str, w_in_out: np.ndarray,
            w_name: str, transposed: bool, bias: np.ndarray | None, b_name: str) -> None:
    """linear with weight[out, in] = w_in_out.T (x @ w_in_out), optional bias[out]."""
    if w_in_out.ndim != 2:
        raise Unsupported(f"weight '{w_name}' is {w_in_out.ndim}-D, expected 2-D")
    n_out = w_in_out.shape[1]
    w = imp.weight(_short(w_name), w_in_out.T, key="T") if transposed else imp.weight(
        _short(w_name), w_in_out.T)
    inputs = {"x": imp.value(x), "weight": w}
    if bias is not None:
        if bias.size != n_out or bias.ndim > 2 or bias.shape[-1] != n_out:
            raise Unsupported(f"bias '{b_name}' of shape {list(bias.shape)} is not [{n_out}]")
        inputs["bias"] = imp.weight(_short(b_name), bias.reshape(-1), key="vec")
    imp.emit("linear", out, _layer_name(w_name, name), **inputs)


def matmul(imp: OnnxImporter, node: Any, name: str) -> None:
    b = _const(imp, node.input[1], "MatMul's B (a weight)")
    # ONNX B[in, out] is the optcli weight transposed: its weight is B.T
    _linear(imp, node.output[0], name, node.input[0], b, node.input[1], True, None, "")


def gemm(imp: OnnxImporter, node: Any, name: str) -> None:
    a = _attrs(imp, node)
    if a.get("alpha", 1.0) != 1.0 or a.get("beta", 1.0) != 1.0 or a.get("transA", 0):
        raise Unsupported("only alpha = beta = 1 and transA = 0")
    b = _const(imp, node.input[1], "Gemm's B")
    c = _const(imp, node.input[2], "Gemm's C") if len(node.input) > 2 and node.input[2] else None
    trans = bool(a.get("transB", 0))
    _linear(imp, node.output[0], name, node.input[0], b.T if trans else b, node.input[1],
            not trans, c, node.input[2] if c is not None else "")


def conv(imp: OnnxImporter, node: Any, name: str) -> None:
    a = _attrs(imp, node)
    w = _const(imp, node.input[1], "Conv weight")
    if w.ndim != 4:
        raise Unsupported(f"only 2-D convolution (weight is {w.ndim}-D)")
    inputs = {"x": imp.value(node.input[0]), "weight": imp.weight(_short(node.input[1]), w)}
    if len(node.input) > 2 and node.input[2]:
        inputs["bias"] = imp.weight(_short(node.input[2]), _const(imp, node.input[2], "bias"))
    attrs = {"stride": list(a.get("strides", [1, 1])), "padding": _pads(a),
             "dilation": list(a.get("dilations", [1, 1])), "groups": int(a.get("group", 1))}
    imp.emit("conv2d", node.output[0], _layer_name(node.input[1], name), attrs, **inputs)


def _pads(a: dict[str, Any]) -> list[int]:
    """ONNX pads [top, left, bottom, right] as optcli's symmetric [h, w]."""
    if a.get("auto_pad", "NOTSET") not in ("NOTSET", "VALID"):
        raise Unsupported(f"auto_pad={a['auto_pad']}")
    p = list(a.get("pads", [0, 0, 0, 0]))
    if len(p) != 4 or p[0] != p[2] or p[1] != p[3]:
        raise Unsupported(f"only symmetric 2-D pads, got {p}")
    return p[:2]


def _pool_attrs(a: dict[str, Any]) -> dict[str, Any]:
    k = list(a.get("kernel_shape", []))
    if len(k) != 2 or a.get("ceil_mode", 0) or any(d != 1 for d in a.get("dilations", [1, 1])):
        raise Unsupported("only 2-D windows with ceil_mode = 0 and no dilation")
    return {"kernel": k, "stride": list(a.get("strides", [1, 1])), "padding": _pads(a)}


def maxpool(imp: OnnxImporter, node: Any, name: str) -> None:
    if len(node.output) > 1 and node.output[1] and imp.consumers.get(node.output[1]):
        raise Unsupported("the Indices output is not supported")
    imp.emit("maxpool2d", node.output[0], name, _pool_attrs(_attrs(imp, node)),
             x=imp.value(node.input[0]))


def avgpool(imp: OnnxImporter, node: Any, name: str) -> None:
    a = _attrs(imp, node)
    attrs = {**_pool_attrs(a), "count_include_pad": bool(a.get("count_include_pad", 0))}
    imp.emit("avgpool2d", node.output[0], name, attrs, x=imp.value(node.input[0]))


def global_avgpool(imp: OnnxImporter, node: Any, name: str) -> None:
    pooled = imp.emit("global_avgpool", "", name, x=imp.value(node.input[0]))   # [B, C]
    imp.emit("reshape", node.output[0], name, {"shape": [0, 0, 1, 1]}, x=pooled)


# ----------------------------------------------------------------------------- shape ops

def flatten(imp: OnnxImporter, node: Any, name: str) -> None:
    axis = int(_attrs(imp, node).get("axis", 1))
    if axis < 0:
        raise Unsupported("negative axis")
    imp.emit("flatten", node.output[0], name, {"axis": axis}, x=imp.value(node.input[0]))


def reshape(imp: OnnxImporter, node: Any, name: str) -> None:
    shape = [int(s) for s in _const(imp, node.input[1], "Reshape shape").reshape(-1)]
    if _attrs(imp, node).get("allowzero", 0) and 0 in shape:
        raise Unsupported("allowzero = 1 with a 0 in the shape")
    if node.input[0] in imp.consts and node.input[0] not in imp.names:
        imp.consts[node.output[0]] = imp.consts[node.input[0]].reshape(shape)
        return
    imp.emit("reshape", node.output[0], name, {"shape": shape}, x=imp.value(node.input[0]))


def transpose(imp: OnnxImporter, node: Any, name: str) -> None:
    perm = _attrs(imp, node).get("perm")
    if perm is None:
        raise Unsupported("perm must be given")
    imp.emit("transpose", node.output[0], name, {"perm": list(perm)},
             x=imp.value(node.input[0]))


def concat(imp: OnnxImporter, node: Any, name: str) -> None:
    imp.emit("concat", node.output[0], name, {"axis": int(_attrs(imp, node)["axis"])},
             xs=[imp.value(v) for v in node.input])


def identity(imp: OnnxImporter, node: Any, name: str) -> None:
    """Identity and inference-mode Dropout: the output is the input."""
    if len(node.output) > 1 and node.output[1] and imp.consumers.get(node.output[1]):
        raise Unsupported("the Dropout mask output is not supported")
    src = node.input[0]
    if src in imp.consts and src not in imp.names:
        imp.consts[node.output[0]] = imp.consts[src]
    else:
        imp.alias(node.output[0], imp.value(src))


# ----------------------------------------------------------------------------- elementwise

def _unary(op: str) -> Callable:
    def lower(imp: OnnxImporter, node: Any, name: str) -> None:
        imp.emit(op, node.output[0], name, x=imp.value(node.input[0]))
    return lower


def _binary(op: str, fold: Callable) -> Callable:
    def lower(imp: OnnxImporter, node: Any, name: str) -> None:
        a, b = (imp.const(v) for v in node.input)
        if a is not None and b is not None:      # constant folding
            imp.consts[node.output[0]] = fold(a, b)
            return
        imp.emit(op, node.output[0], name, a=imp.value(node.input[0]),
                 b=imp.value(node.input[1]))
    return lower


def softmax(imp: OnnxImporter, node: Any, name: str) -> None:
    axis = _attrs(imp, node).get("axis", -1 if imp.opset >= 13 else 1)
    if imp.opset < 13 and axis != -1:
        raise Unsupported("Softmax before opset 13 flattens its input; only axis=-1 maps")
    imp.emit("softmax", node.output[0], name, {"axis": int(axis)}, x=imp.value(node.input[0]))


def gelu(imp: OnnxImporter, node: Any, name: str) -> None:
    imp.emit("gelu", node.output[0], name,
             {"approximate": _attrs(imp, node).get("approximate", "none")},
             x=imp.value(node.input[0]))


def layernorm(imp: OnnxImporter, node: Any, name: str) -> None:
    a = _attrs(imp, node)
    if a.get("axis", -1) != -1:
        raise Unsupported("only axis = -1 (normalise the last axis)")
    inputs = {"x": imp.value(node.input[0]),
              "weight": imp.weight(_short(node.input[1]), _const(imp, node.input[1], "scale"))}
    if len(node.input) > 2 and node.input[2]:
        inputs["bias"] = imp.weight(_short(node.input[2]), _const(imp, node.input[2], "bias"))
    imp.emit("layernorm", node.output[0], _layer_name(node.input[1], name),
             {"eps": float(a.get("epsilon", 1e-5))}, **inputs)


def batchnorm(imp: OnnxImporter, node: Any, name: str) -> None:
    a = _attrs(imp, node)
    if a.get("training_mode", 0):
        raise Unsupported("training_mode = 1")
    roles = ("weight", "bias", "mean", "var")
    inputs = {r: imp.weight(_short(v), _const(imp, v, r)) for r, v in zip(roles, node.input[1:])}
    imp.emit("batchnorm", node.output[0], _layer_name(node.input[1], name),
             {"eps": float(a.get("epsilon", 1e-5))}, x=imp.value(node.input[0]), **inputs)


def gather(imp: OnnxImporter, node: Any, name: str) -> None:
    data = _const(imp, node.input[0], "Gather data (an embedding table)")
    if _attrs(imp, node).get("axis", 0) != 0:
        raise Unsupported("only axis = 0 (an embedding lookup)")
    ids = imp.const(node.input[1])
    if ids is not None:
        imp.consts[node.output[0]] = np.take(data, ids, axis=0)
        return
    imp.emit("embedding", node.output[0], _layer_name(node.input[0], name),
             ids=imp.value(node.input[1]), weight=imp.weight(_short(node.input[0]), data))


IMPORT_OPS: dict[str, Callable[..., None]] = {
    "MatMul": matmul, "Gemm": gemm, "Conv": conv, "MaxPool": maxpool, "AveragePool": avgpool,
    "GlobalAveragePool": global_avgpool, "Flatten": flatten, "Reshape": reshape,
    "Transpose": transpose, "Concat": concat, "Relu": _unary("relu"),
    "Sigmoid": _unary("sigmoid"), "Tanh": _unary("tanh"), "Softmax": softmax, "Gelu": gelu,
    "Add": _binary("add", np.add), "Mul": _binary("mul", np.multiply),
    "LayerNormalization": layernorm, "BatchNormalization": batchnorm, "Gather": gather,
    "Identity": identity, "Dropout": identity,
}
