"""The share step: at most 2**bits values per layer, pruned zeros kept, shared codebooks,
vector sharing, purity, save/load, runtime equivalence and composition with quantize."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from optcli.cli import app
from optcli.errors import ConfigError, StepError
from optcli.formats import CodebookTensor, DenseTensor, SparseTensor
from optcli.io import load_model, save_model
from optcli.runtime import Runtime
from optcli.steps import STEPS
from optcli.steps.base import StepContext
from tests.conftest import SAMPLES, make_cnn, make_mlp, stored_arrays, write_yaml

CTX = StepContext(seed=0)
WEIGHTS = ("fc1.weight", "fc2.weight", "fc3.weight")


def _apply(step, model, **params):
    return STEPS[step].apply(model, STEPS[step].Config(**params), CTX)


@pytest.mark.parametrize("bits", [1, 2, 3, 5])
@pytest.mark.parametrize("init", ["linear", "density", "random"])
def test_at_most_2_to_the_bits_distinct_values_per_layer(bits, init):
    out, rec = _apply("share", make_mlp(), bits=bits, init=init)
    for name in WEIGHTS:
        t = out.tensors[name]
        assert isinstance(t, CodebookTensor) and t.bits <= bits
        assert np.unique(t.decode()).size <= 2 ** bits
    assert [r["layer"] for r in rec.layers] == ["fc1", "fc2", "fc3"]
    assert all(0 < r["rel_error"] < 1 and r["sqnr_db"] > 0 for r in rec.layers)


def test_pruned_zeros_stay_exactly_zero_and_the_mask_is_unchanged():
    pruned, _ = _apply("prune", make_mlp(), sparsity=0.7)
    out, rec = _apply("share", pruned, bits=3)
    for name in WEIGHTS:
        before, after = pruned.tensors[name], out.tensors[name]
        assert isinstance(after, SparseTensor) and after.codebook is not None
        assert after.layout == before.layout
        for a, b in zip(before.coords(), after.coords()):
            np.testing.assert_array_equal(a, b)
        w = after.decode()
        assert np.all(w[before.decode() == 0] == 0)
        assert np.unique(w[w != 0]).size <= 8 and 0 not in after.codebook
    assert all(r["nonzeros"] == pruned.tensors[r["tensor"]].nonzeros for r in rec.layers)


def test_shared_codebook_across_layers():
    out, _ = _apply("share", make_mlp(), bits=3, shared=True)
    values = np.unique(np.concatenate([out.tensors[n].decode().ravel() for n in WEIGHTS]))
    assert values.size <= 8
    separate, _ = _apply("share", make_mlp(), bits=3)
    assert np.unique(np.concatenate([separate.tensors[n].decode().ravel()
                                     for n in WEIGHTS])).size > 8


@pytest.mark.parametrize("unit,clusters", [("filter", 2), ("kernel", 3), ("row", 2)])
def test_vector_sharing_reports_the_reconstruction_error(unit, clusters):
    m = make_cnn()
    out, rec = _apply("share", m, mode="vector", unit=unit, clusters=clusters,
                      init="kmeans++")
    t = out.tensors["conv1.weight"]
    assert isinstance(t, CodebookTensor) and t.unit == unit
    d = {"filter": 9, "kernel": 9, "row": 9}[unit]
    assert np.unique(t.decode().reshape(-1, d), axis=0).shape[0] <= clusters
    row = next(r for r in rec.layers if r["layer"] == "conv1")
    err = np.linalg.norm(t.decode() - m.tensors["conv1.weight"].decode())
    assert row["rel_error"] == pytest.approx(
        err / np.linalg.norm(m.tensors["conv1.weight"].decode()), rel=1e-4)
    if unit != "row":
        assert any("fc: unit" in n for n in rec.notes)       # a linear has no filters


def test_vector_sharing_refuses_a_pruned_layer_and_bad_combinations():
    pruned, _ = _apply("prune", make_mlp(), sparsity=0.5)
    with pytest.raises(StepError, match="fc1"):
        _apply("share", pruned, mode="vector")
    for params in ({"init": "kmeans++"}, {"clusters": 4}, {"mode": "vector", "shared": True},
                   {"mode": "vector", "init": "density"}):
        assert STEPS["share"].check(STEPS["share"].Config(**params))


def test_invalid_combination_is_a_config_error(tmp_path):
    from optcli.config import load_pipeline
    cfg = write_yaml(tmp_path / "p.yaml", "steps:\n  - share: {clusters: 4}\n")
    with pytest.raises(ConfigError, match="clusters"):
        load_pipeline(cfg)


def test_input_model_is_unchanged_and_output_deterministic():
    m = make_mlp()
    before = stored_arrays(m)
    a, _ = _apply("share", m, init="random")
    b, _ = _apply("share", m, init="random")
    assert stored_arrays(m).keys() == before.keys()
    for name, arrays in before.items():
        for role, arr in arrays.items():
            np.testing.assert_array_equal(m.tensors[name].arrays()[role], arr)
    for name in WEIGHTS:
        np.testing.assert_array_equal(a.tensors[name].decode(), b.tensors[name].decode())


def _dense_copy(model):
    return model.replace(tensors={n: DenseTensor(t.decode()) for n, t in model.tensors.items()})


@pytest.mark.parametrize("prune_first", [False, True])
def test_save_load_and_run_equal_a_dense_model_with_decoded_weights(tmp_path, prune_first):
    m = make_mlp()
    if prune_first:
        m, _ = _apply("prune", m, sparsity=0.95)
    out, _ = _apply("share", m, bits=4)
    save_model(out, tmp_path / "s.npz")
    back = load_model(tmp_path / "s.npz")
    for name in out.tensors:
        assert back.tensors[name].encoding == out.tensors[name].encoding
        np.testing.assert_array_equal(back.tensors[name].decode(), out.tensors[name].decode())
    x = {"image": np.random.default_rng(0).standard_normal((5, 1, 8, 8)).astype(np.float32)}
    ref = Runtime(_dense_copy(back), kernels="reference").run(x)["logits"]
    for weights in ("auto", "compact"):
        y = Runtime(back, weights=weights).run(x)["logits"]
        np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)


def test_quantize_after_share_is_refused_unless_asked():
    shared, _ = _apply("share", make_mlp())
    with pytest.raises(StepError, match="fc1"):
        _apply("quantize", shared)
    pruned_shared, _ = _apply("share", _apply("prune", make_mlp(), sparsity=0.5)[0])
    with pytest.raises(StepError, match="requantize_shared"):
        _apply("quantize", pruned_shared)
    out, _ = _apply("quantize", pruned_shared, requantize_shared=True)
    t = out.tensors["fc1.weight"]
    assert isinstance(t, SparseTensor) and t.scale is not None and t.codebook is None


def test_cli_compress_prune_then_share_on_lenet300(tmp_path):
    model = SAMPLES / "lenet300.npz"
    if not model.is_file():
        pytest.skip("sample model missing")
    cfg = write_yaml(tmp_path / "p.yaml", "steps:\n"
                     "  - prune: {sparsity: 0.9, scope: global}\n"
                     "  - share: {bits: 5}\n"
                     "latency: {repeats: 1, warmup: 0}\n")
    out = tmp_path / "small.npz"
    r = CliRunner().invoke(app, ["compress", str(model), "--config", str(cfg), "-o", str(out),
                                 "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert [s["step"] for s in doc["steps"]] == ["prune", "share"]
    assert doc["size"]["ratio"] > 15
    small = load_model(out)
    for name in WEIGHTS:
        t = small.tensors[name]
        assert isinstance(t, SparseTensor) and t.codebook is not None
        assert np.unique(t.float_values()).size <= 32
