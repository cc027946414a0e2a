"""End to end through the CLI on the real shipped sample models: the accuracies stated in
sample_models/README.md are reproduced, and every shipped pipeline compresses its model to a
really smaller file that passes its own gates."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from optcli.cli import app

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "sample_models"
runner = CliRunner()


def _json(*args):
    r = runner.invoke(app, [str(a) for a in args] + ["--json"])
    assert r.exit_code == 0, r.stderr
    return json.loads(r.stdout)


@pytest.mark.parametrize("model, data, metric, value", [
    ("lenet300", "fashion_eval", "top1", 0.8887),
    ("lenet5", "fashion_eval", "top1", 0.9049),
    ("charlm", "charlm_eval", "perplexity", 5.0886),
])
def test_stated_accuracy_is_reproduced(model, data, metric, value):
    doc = _json("eval", SAMPLES / f"{model}.npz", "--data", SAMPLES / f"{data}.npz")
    assert doc["metric"] == metric
    assert doc["value"] == pytest.approx(value, abs=1e-4)


@pytest.mark.parametrize("model, config", [
    ("lenet300", "lenet300_prune_int8"),
    ("lenet5", "lenet5_int8"),
    ("charlm", "charlm_prune_int8"),
    ("charlm", "charlm_sparsegpt"),
    ("lenet300", "deep_compression"),
    ("lenet300", "deep_compression_finetune"),
])
def test_shipped_pipelines_compress_and_pass_their_gates(tmp_path, model, config):
    out = tmp_path / "small.npz"
    doc = _json("compress", SAMPLES / f"{model}.npz", "--config",
                ROOT / "configs" / f"{config}.yaml", "-o", out)
    assert doc["passed"] is True
    assert out.stat().st_size == doc["size"]["after_bytes"]
    assert doc["size"]["before_bytes"] == (SAMPLES / f"{model}.npz").stat().st_size
    assert doc["size"]["ratio"] > 3
    assert doc["accuracy"]["samples"] > 0 and doc["latency"]["after_ms"] > 0
    inspected = _json("inspect", out)
    assert inspected["disk_bytes"] == out.stat().st_size
    assert inspected["provenance"]["steps"]


def test_compact_weights_run_the_compressed_form(tmp_path):
    out = tmp_path / "small.npz"
    _json("compress", SAMPLES / "lenet300.npz", "--config",
          ROOT / "configs" / "lenet300_prune_int8.yaml", "-o", out)
    full = _json("eval", out, "--data", SAMPLES / "fashion_eval.npz", "--samples", 500)
    compact = _json("eval", out, "--data", SAMPLES / "fashion_eval.npz", "--samples", 500,
                    "--weights", "compact")
    assert compact["value"] == full["value"]
    bench = _json("bench", out, "--batch", "4", "--repeats", 2, "--weights", "compact")
    forms = {p["form"] for p in bench["plan"]}
    assert "decode-per-call" in forms or "csr" in forms


def test_compress_reports_perplexity_on_plain_text(tmp_path):
    text = tmp_path / "t.txt"
    text.write_text("ABSURDITY, n.  A statement or belief manifestly inconsistent with one's "
                    "own opinion. " * 6)
    cfg = tmp_path / "p.yaml"
    cfg.write_text("steps:\n  - quantize: {}\nevaluation: {data: t.txt}\n"
                   "latency: {repeats: 2, warmup: 0}\n")
    doc = _json("compress", SAMPLES / "charlm.npz", "--config", cfg, "-o", tmp_path / "q.npz")
    acc = doc["accuracy"]
    assert acc["metric"] == "perplexity" and acc["higher_is_better"] is False
    assert acc["samples"] == len(text.read_text()) - 1
    assert abs(acc["drop"]) < 0.05 and acc["details_after"]["reference_perplexity"] == \
        pytest.approx(acc["before"])


@pytest.mark.skipif(not (ROOT / "real_models" / "minilm").is_dir(),
                    reason="real_models/minilm not fetched (scripts/fetch_real_models.py)")
def test_minilm_int8_pipeline(tmp_path):
    model = tmp_path / "minilm.npz"
    _json("import", ROOT / "real_models" / "minilm", "-o", model)
    r = runner.invoke(app, ["compress", str(model), "--config",
                            str(ROOT / "configs" / "minilm_int8.yaml"), "-o",
                            str(tmp_path / "q.npz"), "--json"])
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    acc = doc["accuracy"]
    assert acc["metric"] == "top1" and acc["before"] == pytest.approx(0.315)
    assert acc["details_after"]["cosine_to_reference"] > 0.999
    assert doc["size"]["ratio"] > 1.5


@pytest.mark.skipif(not (ROOT / "real_models" / "minilm").is_dir(),
                    reason="real_models/minilm not fetched (scripts/fetch_real_models.py)")
def test_minilm_int4_gptq_with_int8_tables(tmp_path):
    """4-bit GPTQ calibrated on a .jsonl of texts, tables at int8: 5x smaller, cosine > 0.97."""
    model = tmp_path / "minilm.npz"
    _json("import", ROOT / "real_models" / "minilm", "-o", model)
    doc = _json("compress", model, "--config", ROOT / "configs" / "minilm_int4.yaml", "-o",
                tmp_path / "q.npz")
    assert doc["accuracy"]["details_after"]["cosine_to_reference"] > 0.97
    assert doc["size"]["ratio"] > 5
    tables = {r["layer"]: r for s in doc["steps"] for r in s.get("layers", [])
              if r["layer"].startswith("embed.")}
    assert set(tables) == {"embed.tokens", "embed.positions"}
    assert all(r["bits"] == 8 for r in tables.values())
