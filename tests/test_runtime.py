"""The runtime: fast kernels equal the reference on whole models, compressed forms execute
as their decoded dense equivalents, and bad inputs are named."""

import numpy as np
import pytest

from optcli.builder import GraphBuilder
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
    m = _compressed(make_mlp(sizes=(64, 256, 256, 10)), ("prune", {"sparsity": 0.99}))
    rt = Runtime(m, weights="compact")
    plan = {p["tensor"]: p for p in rt.plan()}
    assert plan["fc2.weight"]["form"] == "csr"
    assert plan["fc2.weight"]["resident_bytes"] < 0.2 * 256 * 256 * 4


def test_int8_weights_stay_int8_while_running():
    m = _compressed(make_mlp(), ("quantize", {}))
    compact = {p["tensor"]: p for p in Runtime(m, weights="compact").plan()}
    assert compact["fc1.weight"]["form"] == "packed"          # kernels/quantized
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


# ----------------------------------------------------------------------------- fusion, reuse

def _ops(rt):
    return [s.op for s in rt.steps]


@pytest.mark.parametrize("make, fused", [
    (make_mlp, ["flatten+linear+relu", "linear+relu"]),
    (make_cnn, ["conv2d+relu+maxpool2d", "flatten+linear"]),
    (make_lm, ["linear+gelu"]),
])
@pytest.mark.parametrize("batch", [1, 5])
def test_fused_schedule_equals_the_unfused_reference(make, fused, batch):
    m = make()
    fast, ref = Runtime(m), Runtime(m, "reference")
    assert [op for op in _ops(fast) if "+" in op] == fused
    assert all("+" not in op for op in _ops(ref))           # the oracle never fuses
    feeds = _feeds(m, batch=batch)
    np.testing.assert_allclose(fast.run(feeds)["logits"], ref.run(feeds)["logits"],
                               rtol=1e-4, atol=1e-4)
    step = next(s for s in fast.steps if "+" in s.op)
    assert [p.op for p in step.parts] == step.op.split("+")
    assert step.name == "+".join(p.name for p in step.parts)


def _branchy(linear_output: bool):
    """linear -> relu where the linear's output is also read by an add, or is a graph output:
    then it must not be fused away."""
    rng = np.random.default_rng(0)
    b = GraphBuilder("branchy", task={"kind": "regression"})
    x = b.add("flatten", x=b.input("image", ["batch", 1, 8, 8]))
    h = b.add("linear", name="fc", x=x, weight=b.weight("w", rng.standard_normal((64, 64),
                                                                               np.float32)))
    r = b.add("relu", x=h)
    if linear_output:
        b.output(h, h, ["batch", 64])
        b.output(b.add("gelu", x=b.add("linear", x=r, weight=b.weight(
            "w2", rng.standard_normal((8, 64), np.float32)))), "logits", ["batch", 8])
    else:
        b.output(b.add("add", a=r, b=h), "logits", ["batch", 64])
    return b.build()


@pytest.mark.parametrize("linear_output", [False, True], ids=["second-consumer", "graph-output"])
def test_values_read_twice_or_returned_are_not_fused(linear_output):
    m = _branchy(linear_output)
    fast = Runtime(m)
    assert _ops(fast) == (["flatten+linear", "relu", "linear+gelu"] if linear_output else
                          ["flatten+linear", "relu", "add"])
    feeds = _feeds(m)
    got, want = fast.run(feeds), Runtime(m, "reference").run(feeds)
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-4, atol=1e-4)


def test_input_scaling_fuses_into_one_step():
    """x * scale + shift (the sample models' preprocessing) runs as one in-place step, also
    when the shift widens the shape (then it is not in place)."""
    rng = np.random.default_rng(3)
    b = GraphBuilder("scaled", task={"kind": "regression"})
    x = b.input("image", ["batch", 1, 8, 8])
    h = b.add("mul", a=x, b=b.weight("scale", np.array([0.5], np.float32)))
    h = b.add("add", a=h, b=b.weight("shift", rng.standard_normal((3, 1, 1), np.float32)))
    b.output(h, "logits", ["batch", 3, 8, 8])
    m = b.build()
    fast = Runtime(m)
    assert _ops(fast) == ["mul+add"] and set(fast.steps[0].inputs) == {"a", "b", "add_b"}
    feeds = _feeds(m)
    np.testing.assert_allclose(fast.run(feeds)["logits"],
                               Runtime(m, "reference").run(feeds)["logits"], rtol=1e-6)


@pytest.mark.parametrize("make", [make_mlp, make_cnn, make_lm])
def test_a_later_run_never_overwrites_an_earlier_result(make):
    m = make()
    rt = Runtime(m)
    first = rt.run(_feeds(m, batch=3))["logits"]
    kept = first.copy()
    rng = np.random.default_rng(9)
    for _ in range(3):
        feeds = _feeds(m, batch=3)
        feeds = {k: (v + rng.standard_normal(v.shape).astype(v.dtype)) if v.dtype.kind == "f"
                 else v[::-1].copy() for k, v in feeds.items()}
        rt.run(feeds)
    np.testing.assert_array_equal(first, kept)


def test_profile_times_fused_steps_as_their_ops():
    m = make_cnn()
    ms: dict[str, float] = {}
    rt = Runtime(m)
    y = rt.run(_feeds(m), profile=ms)["logits"]
    assert set(ms) == {"conv2d", "relu", "maxpool2d", "flatten", "linear"}
    assert all(v >= 0 for v in ms.values())
    np.testing.assert_allclose(y, rt.run(_feeds(m))["logits"], rtol=1e-6, atol=1e-6)


def test_steps_keep_their_public_fields():
    for s in Runtime(make_cnn()).steps:
        assert {"name", "op", "fn", "inputs", "attrs", "output", "free", "decode"} <= set(
            vars(s)) and callable(s.fn)


def test_a_kernel_error_in_a_fused_step_names_the_nodes():
    b = GraphBuilder("bad", task={"kind": "regression"})
    x = b.add("flatten", x=b.input("image", ["batch", 1, 8, 8]))
    h = b.add("relu", x=b.add("linear", name="fc", x=x,
                              weight=b.weight("w", np.ones((4, 63), np.float32))))
    b.output(h, "logits", ["batch", 4])
    message = r"node '\w+\+fc\+\w+' \(flatten\+linear\+relu\): linear: x has 64"
    with pytest.raises(DataError, match=message):
        Runtime(b.build()).run(_feeds(make_mlp()))


def test_large_inputs_are_checked_cheaply_but_fully():
    rt = Runtime(make_mlp())
    big = np.full((100, 1, 8, 8), 1e35, np.float32)     # finite, but its sum overflows
    assert rt.run({"image": big})["logits"].shape == (100, 10)
    big[57, 0, 3, 4] = np.nan
    with pytest.raises(DataError, match="'image': contains NaN/Inf"):
        rt.run({"image": big})


def test_variadic_inputs_are_read_at_run_time():
    b = GraphBuilder("cat", task={"kind": "regression"})
    x = b.add("flatten", x=b.input("image", ["batch", 1, 8, 8]))
    b.output(b.add("concat", xs=[b.add("relu", x=x), b.add("tanh", x=x)]), "logits",
             ["batch", 128])
    m = b.build()
    feeds = _feeds(m)
    np.testing.assert_allclose(Runtime(m).run(feeds)["logits"],
                               Runtime(m, "reference").run(feeds)["logits"], rtol=1e-6)
