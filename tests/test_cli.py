"""Every command through Typer's CliRunner: exit codes, stdout/stderr split, --json schema."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from optcli.cli import app
from optcli.io import load_model, save_model
from optcli.steps import STEPS
from tests.conftest import ROOT, make_lm, write_yaml

runner = CliRunner()

PIPELINE = """
steps:
  - prune: {sparsity: 0.8, scope: global}
  - quantize: {bits: 8}
evaluation: {data: data.npz}
latency: {batch: 4, repeats: 3, warmup: 1}
"""


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def as_json(result):
    assert result.exit_code == 0, result.output + result.stderr
    return json.loads(result.stdout)


def test_inspect(mlp_path):
    r = invoke("inspect", mlp_path)
    assert r.exit_code == 0 and "fc1" in r.stdout
    doc = as_json(invoke("inspect", mlp_path, "--json"))
    assert doc["params"] == 64 * 32 + 32 + 32 * 16 + 16 + 16 * 10 + 10
    assert [x["layer"] for x in doc["layers"]] == ["fc1", "fc2", "fc3"]


def test_run_writes_outputs(tmp_path, mlp_path, mlp_data):
    out = tmp_path / "y.npz"
    doc = as_json(invoke("run", mlp_path, "--input", mlp_data, "-o", out, "--json",
                         "--batch-size", 7))
    assert doc["samples"] == 40
    y = np.load(out)["logits"]
    assert y.shape == (40, 10)
    assert invoke("run", mlp_path, "--input", mlp_data, "-o", out).exit_code == 2  # exists


def test_eval_top1_and_agreement(mlp_path, mlp_data):
    doc = as_json(invoke("eval", mlp_path, "--data", mlp_data, "--json"))
    assert doc["metric"] == "top1" and 0 <= doc["value"] <= 1 and doc["samples"] == 40
    doc = as_json(invoke("eval", mlp_path, "--data", mlp_data, "--reference", mlp_path,
                         "--metric", "agreement", "--json"))
    assert doc["value"] == 1.0 and doc["cosine"] == pytest.approx(1.0)


def test_eval_perplexity_of_a_language_model(tmp_path):
    p = tmp_path / "lm.npz"
    save_model(make_lm(), p)
    d = tmp_path / "ids.npz"
    np.savez(d, ids=np.random.default_rng(0).integers(0, 20, (6, 12)))
    doc = as_json(invoke("eval", p, "--data", d, "--json"))
    assert doc["metric"] == "perplexity" and 1 < doc["value"] < 1000


def test_bench(mlp_path, tmp_path):
    doc = as_json(invoke("bench", mlp_path, "--batch", "1,8", "--repeats", 3, "--threads", 1,
                         "--reference", mlp_path, "--json"))
    assert [r["batch"] for r in doc["results"]] == [1, 8]
    row = doc["results"][0]
    assert row["model"]["repeats"] == 3 and row["speedup"] > 0
    assert row["model"]["min_ms"] <= row["model"]["median_ms"] <= row["model"]["p99_ms"]
    doc = as_json(invoke("bench", mlp_path, "--batch", "4", "--repeats", 2, "--profile", "--json"))
    assert set(doc["results"][0]["profile_ms"]) == {"flatten", "linear", "relu"}
    assert invoke("bench", mlp_path, "--batch", "x").exit_code == 2


def test_bench_sweep_names_the_batch_with_the_best_throughput(mlp_path):
    doc = as_json(invoke("bench", mlp_path, "--batch", "sweep", "--repeats", 2, "--threads", 1,
                         "--json"))
    rows = doc["results"]
    assert [r["batch"] for r in rows] == [1, 2, 4, 8, 16, 32, 64, 128, 256, 512]
    best = max(rows, key=lambda r: r["model"]["throughput_per_s"])
    assert doc["best"]["batch"] == best["batch"] and doc["best"]["smallest_batch"] == 1
    assert doc["best"]["latency_vs_smallest"] == pytest.approx(
        best["model"]["median_ms"] / rows[0]["model"]["median_ms"])


def test_compress_end_to_end(tmp_path, mlp_path, mlp_data):
    (tmp_path / "data.npz").write_bytes(mlp_data.read_bytes())
    cfg = write_yaml(tmp_path / "p.yaml", PIPELINE)
    out = tmp_path / "small.npz"
    doc = as_json(invoke("compress", mlp_path, "--config", cfg, "-o", out, "--json"))
    for key in ("before_bytes", "after_bytes", "ratio"):
        assert key in doc["size"]
    assert doc["size"]["after_bytes"] == out.stat().st_size
    assert doc["size"]["ratio"] > 1.5
    for key in ("metric", "before", "after"):
        assert key in doc["accuracy"]
    for key in ("before_ms", "after_ms", "speedup"):
        assert key in doc["latency"]
    assert [s["step"] for s in doc["steps"]] == ["prune", "quantize"]
    assert {x["layer"] for x in doc["layers"]} == {"fc1", "fc2", "fc3"}
    assert doc["passed"] is True
    m = load_model(out)
    assert [s["step"] for s in m.provenance["steps"]] == ["prune", "quantize"]
    r = invoke("compress", mlp_path, "--config", cfg, "-o", out)
    assert r.exit_code == 2 and "--force" in r.stderr


def test_compress_is_reproducible_byte_for_byte(tmp_path, mlp_path):
    cfg = write_yaml(tmp_path / "p.yaml", "steps:\n  - prune: {sparsity: 0.5}\n"
                     "latency: {repeats: 1, warmup: 0}\n")
    for name in ("a.npz", "b.npz"):
        assert invoke("compress", mlp_path, "--config", cfg, "-o", tmp_path / name,
                      "--seed", 3).exit_code == 0
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()


def test_compress_never_overwrites_its_input(tmp_path, mlp_path):
    cfg = write_yaml(tmp_path / "p.yaml", "steps:\n  - prune: {}\n")
    before = mlp_path.read_bytes()
    r = invoke("compress", mlp_path, "--config", cfg, "-o", mlp_path, "--force")
    assert r.exit_code == 2 and "input" in r.stderr
    assert mlp_path.read_bytes() == before


def test_gate_failure_exits_3_after_writing(tmp_path, mlp_path):
    cfg = write_yaml(tmp_path / "p.yaml", "steps:\n  - prune: {sparsity: 0.1}\n"
                     "latency: {repeats: 1, warmup: 0}\ngates: {min_compression: 50}\n")
    out = tmp_path / "o.npz"
    r = invoke("compress", mlp_path, "--config", cfg, "-o", out, "--json")
    assert r.exit_code == 3 and "min_compression" in r.stderr
    doc = json.loads(r.stdout)
    assert doc["passed"] is False and doc["gates"][0]["passed"] is False
    assert out.exists()


def test_config_error_exits_2_with_one_line_and_nothing_written(tmp_path, mlp_path):
    cfg = write_yaml(tmp_path / "p.yaml", "steps:\n  - prune: {sparsty: 0.5}\n")
    out = tmp_path / "o.npz"
    r = invoke("compress", mlp_path, "--config", cfg, "-o", out)
    assert r.exit_code == 2 and not out.exists()
    assert r.stderr.strip().count("\n") == 0 and "did you mean 'sparsity'" in r.stderr
    assert list(tmp_path.iterdir()) == [mlp_path, cfg] or sorted(tmp_path.iterdir()) == sorted(
        [mlp_path, cfg])


def test_failure_midway_leaves_no_output(tmp_path, mlp_path, monkeypatch):
    import optcli.compress as comp

    def boom(*a, **k):
        raise KeyboardInterrupt
    monkeypatch.setattr(comp, "latency_section", boom)
    cfg = write_yaml(tmp_path / "p.yaml", "steps:\n  - prune: {}\n")
    r = invoke("compress", mlp_path, "--config", cfg, "-o", tmp_path / "o.npz")
    assert r.exit_code == 130
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mlp.npz", "p.yaml"]


def test_bad_model_file_exits_2(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"garbage")
    r = invoke("inspect", bad)
    assert r.exit_code == 2 and "bad.npz" in r.stderr and r.stdout == ""


def test_data_shape_mismatch_exits_2(tmp_path, mlp_path):
    d = tmp_path / "d.npz"
    np.savez(d, image=np.zeros((3, 1, 9, 9), np.float32))
    r = invoke("run", mlp_path, "--input", d, "-o", tmp_path / "y.npz")
    assert r.exit_code == 2 and "image" in r.stderr and not (tmp_path / "y.npz").exists()


def test_nan_input_is_named(tmp_path, mlp_path):
    d = tmp_path / "d.npz"
    x = np.zeros((3, 1, 8, 8), np.float32)
    x[1, 0, 2, 2] = np.nan
    np.savez(d, image=x)
    r = invoke("eval", mlp_path, "--data", d, "--reference", mlp_path)
    assert r.exit_code == 2 and "NaN" in r.stderr


def test_validate_and_steps(tmp_path, mlp_path):
    cfg = write_yaml(tmp_path / "p.yaml", "steps:\n  - prune: {layers: [fc1]}\n")
    doc = as_json(invoke("validate", "--config", cfg, mlp_path, "--json"))
    assert doc["valid"] is True
    bad = write_yaml(tmp_path / "b.yaml", "steps:\n  - prune: {layers: [conv9]}\n")
    r = invoke("validate", "--config", bad, mlp_path)
    assert r.exit_code == 2 and "conv9" in r.stderr
    doc = as_json(invoke("steps", "--json"))
    assert {s["name"] for s in doc["steps"]} == set(STEPS)
    assert invoke("steps").exit_code == 0


def test_usage_error_exits_2(mlp_path):
    assert invoke("compress", mlp_path).exit_code == 2
    assert invoke("frobnicate").exit_code == 2


def test_eval_text_perplexity_of_the_char_lm(tmp_path):
    text = tmp_path / "t.txt"
    text.write_text("LAWYER, n.  One skilled in circumvention of the law. " * 8)
    doc = as_json(invoke("eval", ROOT / "sample_models" / "charlm.npz", "--data", text,
                         "--window", 64, "--stride", 32, "--json"))
    assert doc["metric"] == "perplexity" and doc["window"] == 64 and doc["stride"] == 32
    assert doc["tokens"] == len(text.read_text()) - 1 and 1 < doc["value"] < 30


def test_eval_text_on_a_classifier_is_an_input_error(tmp_path, mlp_path):
    text = tmp_path / "t.txt"
    text.write_text("hello")
    r = invoke("eval", mlp_path, "--data", text)
    assert r.exit_code == 2 and "language model" in r.stderr


def test_import_onnx_round_trip(tmp_path, mlp, mlp_path, mlp_data):
    onnx = pytest.importorskip("onnx")
    from optcli.interop.onnx_export import export_onnx
    src = tmp_path / "m.onnx"
    onnx.save(export_onnx(mlp), src)
    out = tmp_path / "imported.npz"
    doc = as_json(invoke("import", src, "-o", out, "--json"))
    assert doc["format"] == "onnx" and doc["params"] == as_json(
        invoke("inspect", mlp_path, "--json"))["params"]
    a = as_json(invoke("eval", out, "--data", mlp_data, "--reference", mlp_path,
                       "--metric", "agreement", "--json"))
    assert a["value"] == 1.0 and a["cosine"] > 0.99999


def test_import_refuses_unknown_and_arch_mismatch(tmp_path, mlp_path):
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x00\x01nothing")
    r = invoke("import", junk, "-o", tmp_path / "o.npz")
    assert r.exit_code == 2 and "cannot tell" in r.stderr
    r = invoke("import", mlp_path, "-o", tmp_path / "o.npz")
    assert r.exit_code == 2 and "already an optcli model" in r.stderr
    assert not (tmp_path / "o.npz").exists()
