"""Properties of the lowrank step: the truncation error is the discarded singular values, the
whitened variant wins on output error, full rank reproduces the layer, refusals and warnings
are noted, the input model is untouched, files round-trip, and `optcli compress` runs it."""

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from optcli.builder import GraphBuilder
from optcli.cli import app
from optcli.config import parse_pipeline
from optcli.errors import ConfigError
from optcli.graph import validate
from optcli.io import load_model, save_model
from optcli.lowrank.rewrite import factorize_linear
from optcli.lowrank.svd import choose_rank, decompose
from optcli.runtime import Runtime
from optcli.steps import STEPS
from optcli.steps.base import StepContext
from tests.conftest import SAMPLES, make_lm, make_mlp, stored_arrays, write_yaml

LOWRANK = STEPS["lowrank"]


def _apply(model, context=None, **params):
    return LOWRANK.apply(model, LOWRANK.Config(**params), context or StepContext(seed=0))


def _images(n=40, seed=1):
    return {"image": np.random.default_rng(seed).standard_normal((n, 1, 8, 8)).astype("f4")}


def _correlated(seed=0, d_in=24, d_out=16, rows=400):
    """One linear layer and calibration inputs with a strongly anisotropic covariance (inputs
    mixed by a random matrix with decaying column scales), so weight and output errors differ."""
    rng = np.random.default_rng(seed)
    b = GraphBuilder("one", task={"kind": "regression"})
    y = b.add("linear", name="fc", x=b.input("x", ["batch", d_in]),
              weight=b.weight("fc.w", rng.standard_normal((d_out, d_in)).astype("f4")),
              bias=b.weight("fc.b", rng.standard_normal(d_out).astype("f4")))
    b.output(y, "y", ["batch", d_out])
    mix = rng.standard_normal((d_in, d_in)) * np.logspace(0, -2, d_in)[:, None]
    x = (rng.standard_normal((rows, d_in)) @ mix).astype("f4")
    return b.build(), {"x": x}


def _ctx(data):
    return StepContext(seed=0, calibration=lambda: data)


@pytest.mark.parametrize("rank", [1, 3, 8, 15])
def test_plain_error_is_the_discarded_singular_values(rank):
    m = make_mlp()
    out, rec = _apply(m, rank=rank, layers=["fc1"])
    w = m.tensors["fc1.weight"].decode().astype(np.float64)
    s = np.linalg.svd(w, compute_uv=False)
    a = out.tensors["fc1.weight.lr_out"].decode().astype(np.float64)
    b = out.tensors["fc1.weight.lr_in"].decode().astype(np.float64)
    assert a.shape == (32, rank) and b.shape == (rank, 64)
    discarded = np.sqrt(np.sum(s[rank:] ** 2))
    np.testing.assert_allclose(np.linalg.norm(w - a @ b), discarded, rtol=1e-4, atol=1e-5)
    row, = rec.layers
    np.testing.assert_allclose(row["weight_error"], discarded / np.linalg.norm(w), atol=1e-5)
    assert row["params_after"] == rank * (32 + 64) and row["params_before"] == 32 * 64


def test_whitened_beats_plain_on_output_error():
    m, data = _correlated()
    x = data["x"]
    want = Runtime(m).run({"x": x})["y"]
    errors = {}
    for method in ("svd", "whitened"):
        out, rec = _apply(m, _ctx(data), method=method, rank=4, damping=1e-6)
        got = Runtime(out).run({"x": x})["y"]
        errors[method] = np.linalg.norm(got - want) / np.linalg.norm(want - m.tensors[
            "fc.b"].decode())
        if method == "whitened":       # the recorded trace formula is the measured error
            np.testing.assert_allclose(rec.layers[0]["output_error"], errors[method], rtol=1e-3)
    assert errors["whitened"] < 0.8 * errors["svd"], errors


@pytest.mark.parametrize("kernels", ["reference", "fast"])
@pytest.mark.parametrize("whitened", [False, True])
def test_full_rank_reproduces_the_layer(kernels, whitened):
    m = make_mlp()
    data = _images()
    gram = _gram(m, data, "fc2") if whitened else None      # X^T X of fc2's input [32, 32]
    w = m.tensors["fc2.weight"].decode()
    a, b = decompose(w, gram, damping=1e-3).factors(min(w.shape))
    out = factorize_linear(m, "fc2", a, b)
    validate(out)
    h = Runtime(m, kernels=kernels).run(data)["logits"]
    np.testing.assert_allclose(Runtime(out, kernels=kernels).run(data)["logits"], h,
                               rtol=1e-4, atol=1e-4)


def _gram(model, data, layer):
    from optcli.calibration import layer_inputs
    return layer_inputs(model, [model.graph.node(layer)], data, hessian=True)[layer].hessian


def test_rank_that_saves_nothing_is_refused_with_a_note():
    m = make_mlp()
    out, rec = _apply(m, rank=10)                     # fc3 is 10x16: 10 * 26 >= 160
    assert [r["layer"] for r in rec.layers] == ["fc1", "fc2"]
    assert any(n.startswith("fc3: rank 10") and "saves no parameters" in n for n in rec.notes)
    assert out.graph.node("fc3") == m.graph.node("fc3") and "fc3.weight" in out.tensors
    _, rec = _apply(m, energy=1.0)                    # full rank never saves
    assert rec.layers == [] and len(rec.notes) == 3


def test_rank_criteria():
    s = np.array([4.0, 2.0, 1.0, 1.0])                # squared: 16, 4, 1, 1 of 22
    assert choose_rank(s, (4, 4), energy=16 / 22) == 1
    assert choose_rank(s, (4, 4), energy=0.75) == 2
    assert choose_rank(s, (4, 4), energy=1.0) == 4
    assert choose_rank(s, (4, 4), rank=9) == 4
    assert choose_rank(np.ones(32), (32, 64), params=0.5) == 10      # 0.5 * 2048 // 96
    m = make_mlp()
    _, rec = _apply(m, params=0.5, layers=["fc1"])
    assert rec.layers[0]["params_after"] <= 0.5 * rec.layers[0]["params_before"]


def test_input_model_is_unchanged_and_graph_is_valid():
    m, data = _correlated()
    before, graph = stored_arrays(m), m.graph
    out, rec = _apply(m, _ctx(data), method="whitened", params=0.3)
    validate(out)
    assert m.graph is graph and set(m.tensors) == set(before)
    assert all(np.array_equal(a, before[t][k]) for t in before
               for k, a in m.tensors[t].arrays().items())
    assert "fc.w" not in out.tensors and {"fc.w.lr_in", "fc.w.lr_out", "fc.b"} <= set(out.tensors)
    assert [n.name for n in out.graph.nodes] == ["fc.lr_in", "fc"]


def test_save_load_round_trip(tmp_path):
    m = make_mlp()
    out, _ = _apply(m, rank=5)
    save_model(out, tmp_path / "lr.npz")
    back = load_model(tmp_path / "lr.npz")
    data = _images()
    np.testing.assert_array_equal(Runtime(back).run(data)["logits"],
                                  Runtime(out).run(data)["logits"])


def test_whitened_on_a_sequence_model_reads_3d_inputs():
    m = make_lm()
    ids = np.random.default_rng(0).integers(0, 20, (16, 12))
    out, rec = _apply(m, _ctx({"ids": ids}), method="whitened", rank=4, layers=["mlp.*"])
    assert {r["layer"] for r in rec.layers} == {"mlp.up", "mlp.down"}
    assert all(0 <= r["output_error"] < 1 for r in rec.layers)
    assert np.isfinite(Runtime(out).run({"ids": ids[:2]})["logits"]).all()


def test_pruned_and_quantized_layers_warn():
    m = make_mlp()
    pruned, _ = STEPS["prune"].apply(m, STEPS["prune"].Config(sparsity=0.5), StepContext())
    _, rec = _apply(pruned, rank=3, layers=["fc1"])
    assert any("fc1" in n and "mask is lost" in n for n in rec.notes)
    quant, _ = STEPS["quantize"].apply(m, STEPS["quantize"].Config(), StepContext())
    _, rec = _apply(quant, rank=3, layers=["fc1"])
    assert any("fc1" in n and "decoded to float32" in n for n in rec.notes)


def test_tied_weight_is_skipped():
    b = GraphBuilder("tied", task={"kind": "regression"})
    w = b.weight("w", np.eye(8, dtype="f4"))
    h = b.add("linear", name="a", x=b.input("x", ["batch", 8]), weight=w)
    b.output(b.add("linear", name="b", x=h, weight=w), "y", ["batch", 8])
    out, rec = _apply(b.build(), rank=2)
    assert rec.layers == [] and all("shared" in n for n in rec.notes)


@pytest.mark.parametrize("params, problem", [
    ("{rank: 4, energy: 0.9}", "exactly one"),
    ("{}", "exactly one"),
    ("{method: whitened, rank: 4}", "calibration"),
])
def test_config_errors(params, problem):
    with pytest.raises(ConfigError, match=problem):
        parse_pipeline(f"steps:\n  - lowrank: {params}\n", "p.yaml", Path("."))


def test_compress_end_to_end(tmp_path):
    cfg = write_yaml(tmp_path / "p.yaml", f"""
steps:
  - lowrank: {{method: whitened, params: 0.25, layers: [fc1, fc2]}}
calibration: {{data: {SAMPLES / 'fashion_calib.npz'}, samples: 256}}
evaluation: {{data: {SAMPLES / 'fashion_eval.npz'}, samples: 500}}
latency: {{batch: 8, repeats: 2, warmup: 1}}
""")
    out = tmp_path / "lr.npz"
    r = CliRunner().invoke(app, ["compress", str(SAMPLES / "lenet300.npz"), "--config",
                                 str(cfg), "-o", str(out), "--json"])
    assert r.exit_code == 0, r.output + r.stderr
    doc = json.loads(r.stdout)
    step, = doc["steps"]
    assert [x["layer"] for x in step["layers"]] == ["fc1", "fc2"]
    assert all(x["params_after"] <= 0.25 * x["params_before"] for x in step["layers"])
    assert doc["size"]["ratio"] > 2 and doc["accuracy"]["after"] > 0.6
    assert [n.name for n in load_model(out).graph.nodes if n.op == "linear"] == [
        "fc1.lr_in", "fc1", "fc2.lr_in", "fc2", "fc3"]
    # the report's per-layer rows count both factors of a split layer
    rows = {x["layer"]: x for x in doc["layers"]}
    assert set(rows) >= {"fc1", "fc2", "fc3"} and "fc1.lr_in" not in rows
    fc1 = step["layers"][0]
    assert rows["fc1"]["bytes_after"] == 4 * (fc1["params_after"] + 300)     # + the bias
