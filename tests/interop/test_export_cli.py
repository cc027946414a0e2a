"""`optcli export` end to end: the shipped LeNet-5 and (when fetched) MiniLM, before and after
int8 quantization, run in onnxruntime with outputs equal to optcli's runtime."""

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from optcli.cli import app
from optcli.io import load_model
from optcli.runtime import Runtime
from optcli.steps import STEPS
from optcli.steps.base import StepContext

ort = pytest.importorskip("onnxruntime")
ROOT = Path(__file__).resolve().parents[2]
MINILM = ROOT / "real_models" / "minilm"
runner = CliRunner()


def _session(path):
    opts = ort.SessionOptions()
    # keep int8 weights but compute in float32 (see optcli/interop/onnx_qdq.py)
    opts.add_session_config_entry("session.qdq_matmulnbits_accuracy_level", "1")
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def _export(src, out):
    r = runner.invoke(app, ["export", str(src), "-o", str(out), "--json"])
    assert r.exit_code == 0, r.stderr
    return json.loads(r.stdout)


@pytest.mark.parametrize("quantized", [False, True])
def test_lenet5_export_matches_optcli(tmp_path, quantized):
    src = ROOT / "sample_models" / "lenet5.npz"
    if quantized:
        out = tmp_path / "q.npz"
        r = runner.invoke(app, ["compress", str(src), "--config",
                                str(ROOT / "configs" / "lenet5_int8.yaml"), "-o", str(out)])
        assert r.exit_code == 0, r.stderr
        src = out
    doc = _export(src, tmp_path / "m.onnx")
    assert (doc["int8_initializers"] > 0) == quantized
    x = np.load(ROOT / "sample_models" / "fashion_calib.npz")["image"][:64]
    want = Runtime(load_model(src)).run({"image": x})["logits"]
    got = _session(tmp_path / "m.onnx").run(None, {"image": x.astype(np.float32)})[0]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_export_refuses_to_overwrite(tmp_path):
    src = ROOT / "sample_models" / "lenet5.npz"
    _export(src, tmp_path / "m.onnx")
    r = runner.invoke(app, ["export", str(src), "-o", str(tmp_path / "m.onnx")])
    assert r.exit_code == 2 and "--force" in r.stderr


@pytest.mark.skipif(not MINILM.is_dir(), reason="real_models/minilm not fetched")
def test_minilm_int8_export_matches_optcli(tmp_path):
    from optcli.interop.hf import import_hf
    from optcli.text.retrieval import tokenize
    m = import_hf(MINILM)
    q, _ = STEPS["quantize"].apply(m, STEPS["quantize"].Config(), StepContext())
    from optcli.interop.onnx_export import export_onnx
    (tmp_path / "q.onnx").write_bytes(export_onnx(q).SerializeToString())
    ids, mask = tokenize(q, ["A lawyer is one skilled in circumvention of the law.",
                             "Peace: a period of cheating between two periods of fighting."])
    feeds = {"input_ids": ids, "attention_mask": mask}
    want = Runtime(q).run(feeds)["embedding"]
    got = _session(tmp_path / "q.onnx").run(None, feeds)[0]
    cos = (got * want).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(want, axis=1)
    assert cos.min() >= 0.9999
    ref = Runtime(m).run(feeds)["embedding"]
    assert ((ref * want).sum(1)).min() > 0.99   # int8 stays close to float32
