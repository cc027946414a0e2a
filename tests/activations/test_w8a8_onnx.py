"""W8A8 models exported to ONNX (activations as QuantizeLinear/DequantizeLinear or per-row
fake quantization) give optcli's outputs in onnxruntime."""

import numpy as np
import pytest

from optcli.runtime import Runtime
from tests.activations.test_activations_step import _data, _w8a8
from tests.conftest import make_cnn, make_mlp

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")


@pytest.mark.parametrize("make", [make_mlp, make_cnn], ids=["mlp", "cnn"])
@pytest.mark.parametrize("cfg", [{"mode": "static", "symmetric": False, "wsym": False},
                                 {"mode": "dynamic"}], ids=["static", "dynamic"])
def test_exported_w8a8_runs_in_onnxruntime_like_optcli(make, cfg):
    from optcli.interop.onnx_export import export_onnx
    q, _ = _w8a8(make(), **dict(cfg))
    proto = export_onnx(q)
    assert any(n.op_type == ("QuantizeLinear" if cfg["mode"] == "static" else "Round")
               for n in proto.graph.node)
    so = ort.SessionOptions()
    so.add_session_config_entry("session.qdq_matmulnbits_accuracy_level", "1")
    sess = ort.InferenceSession(proto.SerializeToString(), so,
                                providers=["CPUExecutionProvider"])
    feeds = _data(q, 16, 3)
    want = Runtime(q).run(feeds)["logits"]
    got = sess.run(["logits"], feeds)[0]
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-3 * np.abs(want).max())
