"""ONNX import: optcli -> ONNX -> optcli round trips, a torch-exported LeNet against
onnxruntime, patterns (MatMul + Add, erf GELU), and one error listing every unsupported node."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from optcli.errors import InputError, ModelFormatError  # noqa: E402
from optcli.interop.onnx_export import export_onnx  # noqa: E402
from optcli.interop.onnx_import import import_onnx  # noqa: E402
from optcli.io import load_model, save_model  # noqa: E402
from optcli.runtime import Runtime  # noqa: E402
from tests.conftest import make_cnn, make_mlp  # noqa: E402
from tests.interop import test_onnx_export as export_tests  # noqa: E402

ATOL = 1e-4


def _ort(path: Path, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def _round_trip(model, tmp_path: Path):
    path = tmp_path / f"{model.name}.onnx"
    onnx.save(export_onnx(model), path)
    back = import_onnx(path)
    saved = tmp_path / "back.npz"
    save_model(back, saved)          # the imported model is a valid optcli file
    return load_model(saved)


@pytest.mark.parametrize("make", [make_mlp, make_cnn, export_tests.mlp, export_tests.cnn],
                         ids=["conftest-mlp", "conftest-cnn", "export-mlp", "export-cnn"])
def test_round_trip_gives_equal_outputs(tmp_path, make):
    model = make()
    back = _round_trip(model, tmp_path)
    vi = model.graph.inputs[0]
    shape = [3 if isinstance(d, str) else d for d in vi.shape]
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    want = Runtime(model, "reference").run({vi.name: x})
    got = Runtime(back, "reference").run({vi.name: x})
    assert list(got) == list(want)
    for k in want:
        np.testing.assert_allclose(got[k], want[k], atol=ATOL, rtol=0)
    assert back.graph.inputs[0].shape == vi.shape


def test_round_trip_keeps_layer_names_and_fuses_linear(tmp_path):
    back = _round_trip(make_mlp(), tmp_path)
    linears = [n for n in back.graph.nodes if n.op == "linear"]
    assert [n.name for n in linears] == ["fc1", "fc2", "fc3"]
    assert all("bias" in n.inputs for n in linears)
    assert sorted(back.tensors) == sorted(make_mlp().tensors)


def _torch_lenet(tmp_path: Path) -> Path:
    torch = pytest.importorskip("torch")
    nn = torch.nn
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(),
                        nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.GELU(),
                        nn.Dropout(0.1), nn.Linear(84, 10), nn.Softmax(dim=-1)).eval()
    path = tmp_path / "lenet.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(net, (torch.zeros(2, 1, 28, 28),), str(path), dynamo=False,
                              input_names=["image"], output_names=["probs"], opset_version=17,
                              dynamic_axes={"image": {0: "batch"}, "probs": {0: "batch"}})
        except Exception as e:      # exporter needs packages this environment lacks
            pytest.skip(f"torch.onnx.export unavailable: {e}")
    return path


def test_torch_exported_lenet_matches_onnxruntime(tmp_path):
    path = _torch_lenet(tmp_path)
    model = import_onnx(path)
    ops = [n.op for n in model.graph.nodes]
    assert "gelu" in ops and ops.count("linear") == 3
    x = np.random.default_rng(1).standard_normal((4, 1, 28, 28)).astype(np.float32)
    (want,) = _ort(path, {"image": x})
    for kernels in ("reference", "fast"):
        (got,) = Runtime(model, kernels).run({"image": x}).values()
        np.testing.assert_allclose(got, want, atol=ATOL, rtol=0)
    assert model.graph.inputs[0].shape == ("batch", 1, 28, 28)


def _graph(nodes, inits, out_shape=("N", 4)) -> onnx.ModelProto:
    g = helper.make_graph(
        nodes, "hand", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(out_shape))],
        [numpy_helper.from_array(v, k) for k, v in inits.items()])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def test_hand_built_graph_matmul_add_layernorm_gather(tmp_path):
    rng = np.random.default_rng(2)
    inits = {"W": rng.standard_normal((4, 4)).astype("f4"),
             "c": rng.standard_normal(4).astype("f4"), "g": np.ones(4, "f4"),
             "table": rng.standard_normal((5, 4)).astype("f4"),
             "idx": np.array([1, 3], np.int64)}
    nodes = [helper.make_node("MatMul", ["x", "W"], ["h"]),
             helper.make_node("Add", ["h", "c"], ["h2"]),
             helper.make_node("LayerNormalization", ["h2", "g"], ["h3"], epsilon=1e-3),
             helper.make_node("Gather", ["table", "idx"], ["rows"]),      # folded constant
             helper.make_node("Identity", ["h3"], ["h4"]),
             helper.make_node("Concat", ["h4", "rows"], ["y"], axis=0)]
    path = tmp_path / "hand.onnx"
    onnx.save(_graph(nodes, inits, ("N", 4)), path)
    model = import_onnx(path)
    assert [n.op for n in model.graph.nodes] == ["linear", "layernorm", "concat"]
    assert model.graph.inputs[0].shape == ("batch", 4)
    x = rng.standard_normal((3, 4)).astype(np.float32)
    (want,) = _ort(path, {"x": x})
    np.testing.assert_allclose(Runtime(model, "reference").run({"x": x})["y"], want, atol=ATOL)


def test_unsupported_nodes_are_all_listed(tmp_path):
    nodes = [helper.make_node("Relu", ["x"], ["a"], name="ok"),
             helper.make_node("Cos", ["a"], ["b"], name="node_3"),
             helper.make_node("Relu", ["b"], ["c"]),
             helper.make_node("TopK", ["c", "k"], ["d", "i"], name="node_7"),
             helper.make_node("Gemm", ["d", "W"], ["y"], name="g", alpha=2.0)]
    path = tmp_path / "bad.onnx"
    onnx.save(_graph(nodes, {"k": np.array([4], np.int64), "W": np.eye(4, dtype="f4")}), path)
    with pytest.raises(InputError, match=r"bad.onnx: unsupported ONNX nodes: "
                       r"Cos \(node_3\), TopK \(node_7\)$"):
        import_onnx(path)
    nodes[1] = helper.make_node("Relu", ["a"], ["b"])
    nodes[3] = helper.make_node("Relu", ["c"], ["d"])
    onnx.save(_graph(nodes, {"W": np.eye(4, dtype="f4")}), path)
    with pytest.raises(InputError, match=r"unsupported ONNX nodes: Gemm \(g: only alpha"):
        import_onnx(path)


def test_corrupt_and_missing_onnx(tmp_path, monkeypatch):
    path = tmp_path / "cut.onnx"
    onnx.save(export_onnx(make_mlp()), path)
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(ModelFormatError, match="cut.onnx"):
        import_onnx(path)
    monkeypatch.setitem(__import__("sys").modules, "onnx", None)
    with pytest.raises(InputError, match=r"optcli\[onnx\]"):
        import_onnx(path)
