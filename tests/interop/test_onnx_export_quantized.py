"""Compressed models export as QDQ (int8 initializers + DequantizeLinear) and run in
onnxruntime with optcli's outputs: int8 symmetric/asymmetric, per channel/per tensor, sparse
float and sparse int8, on the conftest MLP, CNN and transformer LM."""

from __future__ import annotations

import numpy as np
import pytest

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

from optcli.interop.onnx_export import export_onnx  # noqa: E402
from optcli.runtime import Runtime  # noqa: E402
from optcli.steps import prune, quantize  # noqa: E402
from optcli.steps.base import StepContext  # noqa: E402
from tests.conftest import make_cnn, make_lm, make_mlp  # noqa: E402

ATOL = 1e-4
RECIPES = {
    "int8-sym-channel": [(quantize, {})],
    "int8-asym-channel": [(quantize, {"symmetric": False})],
    "int8-sym-tensor": [(quantize, {"granularity": "tensor"})],
    "int8-asym-tensor": [(quantize, {"granularity": "tensor", "symmetric": False})],
    "sparse": [(prune, {"sparsity": 0.8})],
    "sparse-int8": [(prune, {"sparsity": 0.8}), (quantize, {})],
    "int4-group": [(quantize, {"bits": 4, "granularity": "group", "group_size": 8,
                               "symmetric": False})],
    "int8-f16-scales": [(quantize, {"granularity": "group", "group_size": 8})],
}
FLOAT_EXPORT = ("sparse", "int4-group", "int8-f16-scales")    # packed codes export decoded
MODELS = {"mlp": make_mlp, "cnn": make_cnn, "lm": make_lm}


def _feeds(name: str) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    if name == "lm":
        return {"ids": rng.integers(0, 20, (2, 9))}
    return {"image": rng.standard_normal((3, 1, 8, 8)).astype(np.float32)}


def _compressed(name: str, recipe: str):
    model = MODELS[name]()
    for step, kw in RECIPES[recipe]:
        model, _ = step.apply(model, step.Config(**kw), StepContext())
    return model


def _session(proto) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    # float32 compute for onnxruntime's fused DQ -> MatMulNBits (see optcli/interop/onnx_qdq.py)
    opts.add_session_config_entry("session.qdq_matmulnbits_accuracy_level", "1")
    return ort.InferenceSession(proto.SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("recipe", sorted(RECIPES))
@pytest.mark.parametrize("name", sorted(MODELS))
def test_compressed_export_matches_runtime(name, recipe):
    model = _compressed(name, recipe)
    proto = export_onnx(model)               # runs onnx.checker.check_model
    feeds = _feeds(name)
    (got,) = _session(proto).run(None, feeds)
    (want,) = Runtime(model).run(feeds).values()
    np.testing.assert_allclose(got, want, atol=ATOL, rtol=0)
    dq = [n for n in proto.graph.node if n.op_type == "DequantizeLinear"]
    n_layers = sum(n.op in ("linear", "conv2d") for n in model.graph.nodes)
    assert len(dq) == (0 if recipe in FLOAT_EXPORT else n_layers)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_int8_initializers_are_int8_and_the_file_is_smaller(name):
    float_bytes = len(export_onnx(MODELS[name]()).SerializeToString())
    model = _compressed(name, "int8-sym-channel")
    n_int8 = sum(t.size for t in model.tensors.values() if t.encoding == "quantized")
    proto = export_onnx(model)
    codes = [i for i in proto.graph.initializer if i.name.endswith((".codes", ".codes.T"))]
    assert codes and all(i.data_type == onnx.TensorProto.INT8 for i in codes)
    floats = {i.name for i in proto.graph.initializer if i.data_type == onnx.TensorProto.FLOAT}
    assert not any(n.endswith((".weight", ".weight.T")) for n in floats)
    # each quantized weight: 4 bytes -> 1 byte (scales are small)
    saved = float_bytes - len(proto.SerializeToString())
    assert saved > 0.7 * 3 * n_int8


def test_per_channel_axis_follows_the_transpose():
    proto = export_onnx(_compressed("cnn", "int8-sym-channel"))
    axes = {n.input[0].rsplit("/", 1)[-1]: n.attribute[0].i for n in proto.graph.node
            if n.op_type == "DequantizeLinear"}
    assert axes == {"conv1.weight.codes": 0, "fc.weight.codes.T": 1}
