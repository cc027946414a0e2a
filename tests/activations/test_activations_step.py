"""The activations step and W8A8 models end to end: runtime, plan, file, errors, CLI."""

import dataclasses

import numpy as np
import pytest
from typer.testing import CliRunner

from optcli.cli import app
from optcli.errors import GraphError, StepError
from optcli.graph import validate
from optcli.io import load_model, save_model
from optcli.runtime import Runtime
from optcli.steps import activations, quantize
from optcli.steps.base import StepContext
from tests.conftest import ROOT, SAMPLES, make_cnn, make_lm, make_mlp


def _data(model, n=64, seed=0):
    rng = np.random.default_rng(seed)
    vi = model.graph.inputs[0]
    if vi.dtype == "int64":
        return {vi.name: rng.integers(0, 20, (n, 12))}
    return {vi.name: rng.standard_normal((n, 1, 8, 8)).astype(np.float32)}


def _w8a8(model, **cfg):
    ctx = StepContext(calibration=lambda: _data(model))
    m, _ = quantize.apply(model, quantize.Config(symmetric=cfg.pop("wsym", True)), ctx)
    return activations.apply(m, activations.Config(**cfg), ctx)


def _run(model, kernels="fast", seed=1):
    feeds = _data(model, 16, seed)
    return next(iter(Runtime(model, kernels=kernels).run(feeds).values()))


@pytest.mark.parametrize("make", [make_mlp, make_cnn, make_lm], ids=["mlp", "cnn", "lm"])
@pytest.mark.parametrize("cfg", [
    {"mode": "dynamic"}, {"mode": "static"}, {"mode": "static", "observer": "kl"},
    {"mode": "static", "observer": "mse", "symmetric": False, "wsym": False},
    {"mode": "static", "observer": "percentile", "percentile": 99.9}])
def test_w8a8_outputs_close_to_float_and_tiers_agree(make, cfg):
    model = make()
    q, record = _w8a8(model, **dict(cfg))
    y0, yf, yr = _run(model), _run(q), _run(q, "reference")
    np.testing.assert_allclose(yf, yr, rtol=1e-4, atol=1e-4 * np.abs(yr).max())
    rel = np.linalg.norm(yf - y0) / np.linalg.norm(y0)
    assert rel < 0.08, rel                  # random tiny models, 64 calibration samples
    layers = {r["layer"] for r in record.layers}
    assert layers == {n.name for n in q.graph.nodes if n.op in ("linear", "conv2d")}
    assert all(n.attrs["input_quant"] == cfg["mode"] for n in q.graph.nodes
               if n.name in layers)


def test_plan_file_round_trip_and_input_unchanged(tmp_path):
    model = make_cnn()
    q, _ = _w8a8(model, mode="static", symmetric=False, wsym=False)
    assert all("input_quant" not in n.attrs for n in model.graph.nodes)
    forms = {p["tensor"]: p["form"] for p in Runtime(q).plan()}
    assert forms["conv1.weight"] == forms["fc.weight"] == "int8-codes"
    save_model(q, tmp_path / "q.npz")
    again = load_model(tmp_path / "q.npz")
    assert again.graph == q.graph
    np.testing.assert_array_equal(_run(again), _run(q))


def test_quantize_must_come_first():
    model = make_mlp()
    with pytest.raises(StepError, match="layer 'fc1'.*quantize"):
        activations.apply(model, activations.Config(mode="dynamic"), StepContext())


def test_float_weight_with_input_quant_is_refused_at_load_naming_the_node():
    model = make_mlp()
    nodes = tuple(dataclasses.replace(n, attrs={"input_quant": "dynamic"})
                  if n.name == "fc2" else n for n in model.graph.nodes)
    bad = model.replace(graph=dataclasses.replace(model.graph, nodes=nodes))
    with pytest.raises(GraphError, match="node 'fc2'.*int8-quantized weight"):
        validate(bad)


def test_static_needs_a_scale_and_dynamic_is_symmetric():
    q, _ = _w8a8(make_mlp(), mode="dynamic")
    for attrs, msg in (({"input_quant": "static"}, "needs input_scale"),
                       ({"input_quant": "dynamic", "input_zero_point": 3}, "symmetric")):
        nodes = tuple(dataclasses.replace(n, attrs=attrs) if n.name == "fc1" else n
                      for n in q.graph.nodes)
        with pytest.raises(GraphError, match=f"node 'fc1'.*{msg}"):
            validate(q.replace(graph=dataclasses.replace(q.graph, nodes=nodes)))
    assert activations.check(activations.Config(mode="dynamic", symmetric=False))


def test_cli_compress_lenet5_w8a8_static(tmp_path):
    if not (SAMPLES / "lenet5.npz").is_file():
        pytest.skip("sample models not built")
    cfg = tmp_path / "p.yaml"
    cfg.write_text(f"""
steps:
  - quantize: {{bits: 8}}
  - activations: {{mode: static, observer: percentile, symmetric: false}}
calibration: {{data: {SAMPLES}/fashion_calib.npz, samples: 128}}
evaluation: {{data: {SAMPLES}/fashion_eval.npz, samples: 500}}
latency: {{batch: 1, repeats: 3, warmup: 1}}
""")
    out = tmp_path / "l5.npz"
    r = CliRunner().invoke(app, ["compress", str(SAMPLES / "lenet5.npz"), "--config", str(cfg),
                                 "-o", str(out), "--json"])
    assert r.exit_code == 0, r.output
    m = load_model(out)
    assert {n.attrs.get("input_quant") for n in m.graph.nodes
            if n.op in ("linear", "conv2d")} == {"static"}
    assert (ROOT / "configs" / "lenet5_w8a8.yaml").is_file()
