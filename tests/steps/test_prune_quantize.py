"""Properties of the first two steps: exact sparsity, error bounds, composition, purity."""

import copy

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from optcli.formats import QuantizedTensor, SparseTensor
from optcli.io import load_model, save_model
from optcli.steps import STEPS, prune, quantize
from optcli.steps.base import StepContext
from tests.conftest import make_cnn, make_mlp, stored_arrays

CTX = StepContext(seed=0)


def _apply(step, model, **params):
    return STEPS[step].apply(model, STEPS[step].Config(**params), CTX)



@settings(max_examples=25, deadline=None)
@given(sparsity=st.floats(0.0, 0.99), scope=st.sampled_from(["layer", "global"]))
def test_prune_reaches_exact_sparsity(sparsity, scope):
    m = make_mlp()
    out, rec = _apply("prune", m, sparsity=sparsity, scope=scope)
    sizes = [m.tensors[f"fc{i}.weight"].size for i in (1, 2, 3)]
    zeros = [out.tensors[f"fc{i}.weight"].size - out.tensors[f"fc{i}.weight"].nonzeros
             for i in (1, 2, 3)]
    if scope == "layer":
        assert zeros == [round(sparsity * s) for s in sizes]
    else:
        assert sum(zeros) == round(sparsity * sum(sizes))
    assert [r["layer"] for r in rec.layers] == ["fc1", "fc2", "fc3"]


def test_prune_removes_the_smallest_magnitudes():
    m = make_mlp()
    out, _ = _apply("prune", m, sparsity=0.6)
    w, p = m.tensors["fc1.weight"].decode(), out.tensors["fc1.weight"].decode()
    kept, dropped = np.abs(w[p != 0]), np.abs(w[p == 0])
    assert kept.min() >= dropped.max()
    np.testing.assert_array_equal(p[p != 0], w[p != 0])


def test_global_scope_ranks_across_layers():
    m = make_mlp()
    out, _ = _apply("prune", m, sparsity=0.5, scope="global")
    ws = [m.tensors[f"fc{i}.weight"].decode() for i in (1, 2, 3)]
    ps = [out.tensors[f"fc{i}.weight"].decode() for i in (1, 2, 3)]
    kept = np.concatenate([np.abs(w[p != 0]) for w, p in zip(ws, ps)])
    dropped = np.concatenate([np.abs(w[p == 0]) for w, p in zip(ws, ps)])
    assert kept.min() >= dropped.max()


def test_steps_never_mutate_their_input():
    m = make_cnn()
    before = stored_arrays(m)
    graph, prov = copy.deepcopy(m.graph), copy.deepcopy(m.provenance)
    mid, _ = _apply("prune", m, sparsity=0.7)
    mid_before = stored_arrays(mid)
    _apply("quantize", mid)
    for name, arrays in before.items():
        for k, a in arrays.items():
            np.testing.assert_array_equal(m.tensors[name].arrays()[k], a)
    for name, arrays in mid_before.items():
        for k, a in arrays.items():
            np.testing.assert_array_equal(mid.tensors[name].arrays()[k], a)
    assert m.graph == graph and m.provenance == prov


@pytest.mark.parametrize("granularity", ["channel", "tensor"])
@pytest.mark.parametrize("symmetric", [True, False])
def test_quantize_error_bound_and_distinct_values(granularity, symmetric):
    m = make_cnn()
    out, rec = _apply("quantize", m, granularity=granularity, symmetric=symmetric)
    for name in ("conv1.weight", "fc.weight"):
        q = out.tensors[name]
        assert isinstance(q, QuantizedTensor)
        w, d = m.tensors[name].decode(), q.decode()
        scale = q.scale.reshape((-1,) + (1,) * (w.ndim - 1)) if q.axis == 0 else q.scale[0]
        assert np.all(np.abs(w - d) <= scale / 2 * (1 + 1e-5))
        rows = d.reshape(d.shape[0], -1) if q.axis == 0 else d.reshape(1, -1)
        assert all(len(np.unique(r)) <= 256 for r in rows)
    assert {r["encoding"] for r in rec.layers} == {
        f"int8/{granularity}" + ("" if symmetric else " asym")}


def test_prune_then_quantize_keeps_zeros_and_stays_sparse(tmp_path):
    m = make_mlp()
    pruned, _ = _apply("prune", m, sparsity=0.8)
    q, _ = _apply("quantize", pruned)
    save_model(q, tmp_path / "q.npz")
    back = load_model(tmp_path / "q.npz")
    for i in (1, 2, 3):
        p, b = pruned.tensors[f"fc{i}.weight"].decode(), back.tensors[f"fc{i}.weight"]
        assert isinstance(b, SparseTensor) and b.values.dtype == np.int8
        np.testing.assert_array_equal(b.decode() == 0, p == 0)
        rows_scale = b.scale.reshape(-1, 1)
        assert np.all(np.abs(b.decode() - p) <= rows_scale / 2 * (1 + 1e-5))


def test_quantize_then_prune_keeps_int8_codes():
    m = make_mlp()
    q, _ = _apply("quantize", m)
    p, _ = _apply("prune", q, sparsity=0.5)
    t = p.tensors["fc1.weight"]
    assert isinstance(t, SparseTensor) and t.values.dtype == np.int8
    qd = q.tensors["fc1.weight"].decode()
    pd = t.decode()
    np.testing.assert_array_equal(pd[pd != 0], qd[pd != 0])


def test_pruning_packed_low_bit_codes_keeps_their_values_and_says_so():
    m = make_mlp()
    q, _ = _apply("quantize", m, bits=4, granularity="group", group_size=16)
    p, rec = _apply("prune", q, sparsity=0.5)
    t = p.tensors["fc1.weight"]
    assert isinstance(t, SparseTensor) and t.values.dtype == np.float32
    qd, pd = q.tensors["fc1.weight"].decode(), t.decode()
    np.testing.assert_array_equal(pd[pd != 0], qd[pd != 0])     # kept values: on the grid
    assert any("fc1: int4/g16" in n and "quantize after pruning" in n for n in rec.notes)


def test_files_really_shrink(tmp_path):
    m = make_mlp(sizes=(64, 256, 128, 10))
    sizes = {}
    for label, model in [("dense", m), ("pruned", _apply("prune", m, sparsity=0.9)[0]),
                         ("int8", _apply("quantize", m)[0])]:
        sizes[label] = save_model(model, tmp_path / f"{label}.npz")
    assert sizes["dense"] / sizes["pruned"] > 4
    assert sizes["dense"] / sizes["int8"] > 3


def test_layer_selection():
    m = make_mlp()
    out, rec = _apply("prune", m, sparsity=0.5, layers=["fc*"], exclude=["fc3"])
    assert [r["layer"] for r in rec.layers] == ["fc1", "fc2"]
    assert out.tensors["fc3.weight"] is m.tensors["fc3.weight"]


def test_every_step_is_documented():
    for name, mod in STEPS.items():
        assert mod.__name__.endswith("." + name)
        assert mod.__doc__ and "steps:" in mod.__doc__ and mod.DESCRIPTION
    assert prune.Config().sparsity == 0.5 and quantize.Config().bits == 8
