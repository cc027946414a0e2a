"""run / eval / bench honour the stored plan and the --workers/--strategy overrides; the
`plan` command; the parallelize step leaves weights unchanged."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from optcli.cli import app
from optcli.io import load_model
from optcli.steps import parallelize
from optcli.steps.base import StepContext
from tests.conftest import make_mlp, stored_arrays, write_yaml

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def as_json(result):
    assert result.exit_code == 0, result.output + result.stderr
    return json.loads(result.stdout)


def test_run_data_parallel_writes_the_serial_outputs(tmp_path, mlp_path, mlp_data):
    serial, par = tmp_path / "a.npz", tmp_path / "b.npz"
    as_json(invoke("run", mlp_path, "--input", mlp_data, "-o", serial, "--json"))
    doc = as_json(invoke("run", mlp_path, "--input", mlp_data, "-o", par, "--json",
                         "--workers", 2, "--strategy", "data", "--batch-size", 16))
    assert doc["parallel"]["strategy"] == "data" and doc["parallel"]["kind"] == "process"
    np.testing.assert_allclose(np.load(par)["logits"], np.load(serial)["logits"], rtol=1e-5,
                               atol=1e-6)


def test_eval_honours_the_stored_plan(tmp_path, mlp_path, mlp_data):
    cfg = write_yaml(tmp_path / "p.yaml", "steps:\n  - parallelize: {strategy: pipeline, "
                                          "workers: 2}\n")
    out = tmp_path / "planned.npz"
    assert invoke("compress", mlp_path, "--config", cfg, "-o", out).exit_code == 0
    m = load_model(out)
    assert m.extra["parallel"]["strategy"] == "pipeline"
    before, after = stored_arrays(load_model(mlp_path)), stored_arrays(m)
    assert before.keys() == after.keys()
    assert all(np.array_equal(after[t][r], a) for t in before for r, a in before[t].items())
    want = as_json(invoke("eval", mlp_path, "--data", mlp_data, "--json"))
    got = as_json(invoke("eval", out, "--data", mlp_data, "--json"))
    assert got["value"] == want["value"] and got["parallel"]["strategy"] == "pipeline"
    got = as_json(invoke("eval", out, "--data", mlp_data, "--json", "--strategy", "tensor"))
    assert got["value"] == want["value"] and got["parallel"]["strategy"] == "tensor"
    r = invoke("eval", out, "--data", mlp_data)
    assert r.exit_code == 0 and "parallel: pipeline × 2 thread workers" in r.stdout


def test_bench_with_workers_and_bad_options(mlp_path):
    doc = as_json(invoke("bench", mlp_path, "--batch", 8, "--repeats", 2, "--workers", 2,
                         "--worker-kind", "thread", "--json"))
    assert doc["parallel"]["kind"] == "thread" and doc["results"][0]["model"]["repeats"] == 2
    assert "parallel" not in as_json(invoke("bench", mlp_path, "--batch", 8, "--repeats", 2,
                                            "--threads", 1, "--json"))
    r = invoke("bench", mlp_path, "--batch", 8, "--workers", 2, "--strategy", "warp")
    assert r.exit_code == 2 and "strategy 'warp'" in r.stderr
    r = invoke("run", mlp_path, "--input", "x.npz", "-o", "y.npz", "--workers", 9,
               "--strategy", "pipeline")
    assert r.exit_code == 2
    r = invoke("bench", mlp_path, "--workers", 2, "--worker-kind", "thread", "--profile")
    assert r.exit_code == 2 and "--profile" in r.stderr


def test_plan_command(mlp_path):
    doc = as_json(invoke("plan", mlp_path, "--workers", 2, "--batch", 32, "--json"))
    strategies = {(c["plan"]["strategy"], c["plan"]["kind"]) for c in doc["candidates"]}
    assert strategies == {("serial", "thread"), ("data", "process"), ("data", "thread"),
                          ("pipeline", "thread"), ("tensor", "thread")}
    serial = next(c for c in doc["candidates"] if c["plan"]["strategy"] == "serial")
    assert serial["predicted_speedup"] == 1.0 and doc["chosen_by"] == "predicted_speedup"
    assert 0.5 <= doc["measured"]["thread_scaling"] <= 2.0
    assert doc["choice"] is not None and [x["workers"] for x in doc["extrapolation"]] == [
        8, 32, 64]
    assert all(c["predicted_speedup"] > 0 and c["memory_per_worker"] > 0
               for c in doc["candidates"])
    doc = as_json(invoke("plan", mlp_path, "--memory-per-worker", "1KB", "--json"))
    assert doc["choice"] is None and not any(c["fits"] for c in doc["candidates"])
    r = invoke("plan", mlp_path, "--batch", 16)
    assert r.exit_code == 0 and "cost model, not measured" in r.stdout
    assert invoke("plan", mlp_path, "--memory-per-worker", "lots").exit_code == 2


def test_plan_measure_chooses_the_fastest_measured_candidate(mlp_path):
    doc = as_json(invoke("plan", mlp_path, "--workers", 2, "--batch", 64, "--measure",
                         "--json"))
    assert doc["chosen_by"] == "measured_speedup"
    best = max(doc["candidates"], key=lambda c: c["measured_speedup"])
    assert doc["choice"] == best["plan"]
    assert next(c for c in doc["candidates"]
                if c["plan"]["strategy"] == "serial")["measured_speedup"] == 1.0


def test_parallelize_step_keeps_weights_and_refuses_impossible_plans():
    m = make_mlp()
    before = stored_arrays(m)
    new, rec = parallelize.apply(m, parallelize.Config(), StepContext())
    assert new.extra["parallel"]["strategy"] in ("serial", "data", "pipeline", "tensor")
    speedups = rec.details["predicted_speedup"]
    assert set(speedups) == {"serial", "data", "pipeline", "tensor"} and speedups["serial"] == 1
    best = max(speedups, key=speedups.get)
    assert new.extra["parallel"]["strategy"] == best
    for name, arrays in before.items():
        for role, a in arrays.items():
            assert np.array_equal(new.tensors[name].arrays()[role], a)
    try:
        parallelize.apply(m, parallelize.Config(strategy="pipeline", workers=7), StepContext())
    except Exception as e:
        assert "7 pipeline stages but the graph has only 6 nodes" in str(e)
    else:
        raise AssertionError("7 stages over 6 nodes accepted")


def test_thread_predictions_use_the_measured_scaling():
    from optcli.parallel import planner as pl
    from optcli.parallel.planner import ModelCosts, predict_data
    mc = ModelCosts([], (0.0, 0.0), 0, 0.0, 0.0, 1e-3, 0.256, 1.0, thread_scaling=1.5)
    m = pl.default_machine(2)
    t1 = 0.128                                   # 128 samples at 1 ms each, P = 0
    assert predict_data(mc, 256, 2, "thread", m) == pytest.approx(2 * t1 / 1.5)
    slow = ModelCosts([], (0.0, 0.0), 0, 0.0, 0.0, 1e-3, 0.256, 1.0, thread_scaling=0.6)
    for w in (2, 8, 64):                          # never negative, never better than 0.6x
        t = predict_data(slow, 256, w, "thread", m)
        assert t == pytest.approx(0.256 / w * w / 0.6)
