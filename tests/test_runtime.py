"""The runtime: fast kernels equal the reference on whole models, compressed forms execute
as their decoded dense equivalents, and bad inputs are named."""

import numpy as np
import pytest

from optcli.errors import DataError
from optcli.kernels import sparse
from optcli.runtime import Runtime
from optcli.steps import STEPS
from optcli.steps.base import StepContext
from tests.conftest import make_cnn, make_lm, make_mlp


def _feeds(model, batch=5, seq=9):
    rng = np.random.default_rng(2)
    if model.task["kind"] == "language_model":
        return {"ids": rng.integers(0, 20, (batch, seq))}
    return {"image": rng.standard_normal((batch, 1, 8, 8)).astype(np.float32)}


def _compressed(model, *steps):
    for name, params in steps:
        model, _ = STEPS[name].apply(model, STEPS[name].Config(**params), StepContext())
    return model


@pytest.mark.parametrize("make", [make_mlp, make_cnn, make_lm])
@pytest.mark.parametrize("steps", [
    (),
    (("prune", {"sparsity": 0.95}),),
    (("prune", {"sparsity": 0.5}),),
    (("quantize", {"symmetric": False}),),
    (("prune", {"sparsity": 0.95}), ("quantize", {})),
], ids=["dense", "sparse95", "sparse50", "int8", "sparse-int8"])
@pytest.mark.parametrize("weights", ["auto", "compact"])
def test_fast_runtime_equals_reference(make, steps, weights):
    m = _compressed(make(), *steps)
    feeds = _feeds(m)
    fast, ref = Runtime(m, "fast", weights), Runtime(m, "reference")
    y, want = fast.run(feeds)["logits"], ref.run(feeds)["logits"]
    np.testing.assert_allclose(y, want, rtol=1e-4, atol=1e-4)
    forms = {p["form"] for p in fast.plan()}
    if steps:
        assert forms - {"dense"} == ({"decoded"} if weights == "auto" else
                                     forms - {"dense", "decoded"})
        assert "decoded" not in forms or weights == "auto"


@pytest.mark.skipif(not sparse.available(), reason="scipy not installed")
def test_very_sparse_linear_runs_as_csr_and_stays_small():
    m = _compressed(make_mlp(sizes=(64, 256, 256, 10)), ("prune", {"sparsity": 0.95}))
    rt = Runtime(m, weights="compact")
    plan = {p["tensor"]: p for p in rt.plan()}
    assert plan["fc2.weight"]["form"] == "csr"
    assert plan["fc2.weight"]["resident_bytes"] < 0.2 * 256 * 256 * 4


def test_int8_weights_stay_int8_while_running():
    m = _compressed(make_mlp(), ("quantize", {}))
    compact = {p["tensor"]: p for p in Runtime(m, weights="compact").plan()}
    assert compact["fc1.weight"]["form"] == "decode-per-call"
    assert compact["fc1.weight"]["resident_bytes"] < 64 * 32 * 2
    auto = {p["tensor"]: p for p in Runtime(m).plan()}
    assert auto["fc1.weight"]["form"] == "decoded"
    assert auto["fc1.weight"]["resident_bytes"] == 64 * 32 * 4


def test_intermediates_are_freed():
    m = make_mlp()
    rt = Runtime(m)
    freed = {v for s in rt.steps for v in s.free}
    produced = {s.output for s in rt.steps} - {"logits"}
    assert produced <= freed


@pytest.mark.parametrize("feeds, message", [
    ({}, "missing model input 'image'"),
    ({"image": np.zeros((2, 64), np.float32)}, "expected rank 4"),
    ({"image": np.zeros((2, 1, 8, 9), np.float32)}, "dim 3 is 9, expected 8"),
    ({"image": np.full((2, 1, 8, 8), np.inf, np.float32)}, "NaN/Inf"),
    ({"image": np.array([["a"]])}, "rank"),
])
def test_bad_inputs_are_named(feeds, message):
    with pytest.raises(DataError, match=message):
        Runtime(make_mlp()).run(feeds)


def test_out_of_range_token_is_a_data_error():
    with pytest.raises(DataError, match="embedding"):
        Runtime(make_lm()).run({"ids": np.array([[1, 2, 99]])})
