"""Properties of the calibration-aware prune methods (Wanda, SparseGPT) and of the streamed
layer-input statistics they read."""

import numpy as np
import pytest

from optcli.calibration import inverse_hessian_upper, layer_inputs
from optcli.errors import StepError
from optcli.pruning import magnitude, wanda
from optcli.steps import prune
from optcli.steps.base import StepContext, select_layers
from tests.conftest import make_cnn, make_lm, make_mlp, stored_arrays


def _images(n=96, seed=1, correlated=False):
    rng = np.random.default_rng(seed)
    if not correlated:
        return {"image": rng.standard_normal((n, 1, 8, 8)).astype(np.float32)}
    # 64 pixels driven by 6 latent factors plus a little noise: strongly correlated inputs
    z = rng.standard_normal((n, 6)) @ rng.standard_normal((6, 64))
    x = z + 0.1 * rng.standard_normal((n, 64)) + rng.standard_normal(64)
    return {"image": x.reshape(n, 1, 8, 8).astype(np.float32)}


def _tokens(n=12, seq=10, seed=2):
    return {"ids": np.random.default_rng(seed).integers(0, 20, (n, seq))}


def _prune(model, data, **params):
    ctx = StepContext(seed=0, calibration=lambda: data)
    return prune.apply(model, prune.Config(**params), ctx)


def _w(model, name):
    return model.tensors[name].decode()



@pytest.mark.parametrize("method", ["wanda", "sparsegpt"])
@pytest.mark.parametrize("sparsity", [0.3, 0.5, 0.9])
def test_exact_sparsity_per_row_and_input_unchanged(method, sparsity):
    m = make_mlp()
    before = stored_arrays(m)
    out, rec = _prune(m, _images(), method=method, sparsity=sparsity)
    for i in (1, 2, 3):
        p = _w(out, f"fc{i}.weight")
        zeros = (p == 0).sum(axis=1)
        assert (zeros == round(sparsity * p.shape[1])).all(), (method, i)
    assert [r["layer"] for r in rec.layers] == ["fc1", "fc2", "fc3"]
    after = stored_arrays(m)
    for name, arrs in before.items():
        for k, a in arrs.items():
            np.testing.assert_array_equal(a, after[name][k])


@pytest.mark.parametrize("method", ["wanda", "sparsegpt"])
@pytest.mark.parametrize("n,m", [(2, 4), (4, 8)])
def test_nm_pattern_holds_in_every_group(method, n, m):
    model = make_lm()
    out, _ = _prune(model, _tokens(), method=method, n=n, m=m)
    for node in select_layers(model, ["*"], []):
        p = _w(out, node.inputs["weight"])
        groups = (p != 0).reshape(p.shape[0], -1, m).sum(axis=2)
        assert (groups == n).all(), node.name


def test_sparsegpt_reconstructs_better_than_magnitude_and_wanda():
    data = _images(n=256, correlated=True)
    x = data["image"].reshape(len(data["image"]), -1).astype(np.float64)    # fc1's input
    model = make_mlp()
    w = _w(model, "fc1.weight")
    errors = {}
    for method in ("magnitude", "wanda", "sparsegpt"):
        out, _ = _prune(model, data, method=method, sparsity=0.5, layers=["fc1"])
        errors[method] = np.linalg.norm(x @ w.T - x @ _w(out, "fc1.weight").T)
    assert errors["sparsegpt"] < 0.5 * errors["magnitude"], errors
    assert errors["sparsegpt"] < errors["wanda"], errors


def test_wanda_equals_row_magnitude_when_input_norms_are_equal():
    w = make_mlp().tensors["fc1.weight"].decode()
    cfg = prune.Config(method="wanda", sparsity=0.4)
    p = wanda.prune(w, np.full(w.shape[1], 3.7), cfg)
    expect = np.stack([np.where(magnitude.lowest_mask(np.abs(r), 0.4), r, 0) for r in w])
    np.testing.assert_array_equal(p, expect)


def test_streamed_statistics_equal_direct_sums():
    model = make_mlp()
    data = _images(n=50)
    stats = layer_inputs(model, select_layers(model, ["fc1", "fc2"], []), data,
                         batch_size=7, hessian=True)
    x1 = data["image"].reshape(50, -1).astype(np.float64)
    w1, b1 = _w(model, "fc1.weight"), _w(model, "fc1.bias")
    x2 = np.maximum(x1 @ w1.T + b1, 0)                                      # fc2's input
    for name, x in (("fc1", x1), ("fc2", x2)):
        s = stats[name]
        assert s.rows == 50
        np.testing.assert_allclose(s.hessian, x.T @ x, rtol=1e-5, atol=1e-4)
        np.testing.assert_allclose(s.sq_norm, (x * x).sum(0), rtol=1e-5, atol=1e-4)


def test_layers_reading_one_value_share_statistics():
    model = make_lm()
    stats = layer_inputs(model, select_layers(model, ["attn.*"], []), _tokens(n=5, seq=6))
    assert stats["attn.q"] is stats["attn.k"] is stats["attn.v"]
    assert stats["attn.q"].rows == 30 and stats["attn.q"].hessian is None
    assert stats["attn.o"] is not stats["attn.q"]


def test_calibration_methods_need_a_calibration_section():
    ctx = StepContext(seed=0)
    with pytest.raises(StepError, match="method 'wanda' needs a calibration: section"):
        prune.apply(make_mlp(), prune.Config(method="wanda"), ctx)


def test_conv_layers_are_refused_by_name():
    data = _images()
    with pytest.raises(StepError, match="conv1"):
        _prune(make_cnn(), data, method="sparsegpt")
    out, _ = _prune(make_cnn(), data, method="sparsegpt", exclude=["conv1"])
    assert (_w(out, "fc.weight") == 0).mean() == 0.5


def test_singular_hessian_gets_more_damping_then_fails_by_name():
    x = np.random.default_rng(0).standard_normal((3, 8))                   # rank 3 of 8
    u = inverse_hessian_upper(x.T @ x / 3, 1e-12, "fc")
    np.testing.assert_allclose(np.triu(u), u)
    bad = -np.eye(4)
    with pytest.raises(StepError, match="layer 'fc'"):
        inverse_hessian_upper(bad, 0.01, "fc")


def test_padding_tokens_are_left_out_of_the_statistics():
    from optcli.calibration import LayerInputs
    x = np.random.default_rng(0).standard_normal((2, 3, 4))                # [B, T, in]
    tokens = np.array([[True, True, False], [True, False, False]])
    s = LayerInputs("fc", "h", np.zeros(4), hessian=np.zeros((4, 4)))
    s.add(x, tokens)
    real = x[tokens]                                                         # [3, in]
    assert s.rows == 3
    np.testing.assert_allclose(s.hessian, real.T @ real)


def test_masked_batches_count_real_tokens_only():
    from optcli.builder import GraphBuilder
    rng = np.random.default_rng(3)
    emb = rng.standard_normal((20, 8)).astype(np.float32)
    b = GraphBuilder("enc", task={"kind": "regression"})
    ids = b.input("ids", ["batch", "seq"], dtype="int64", meaning="token_ids")
    b.input("mask", ["batch", "seq"], meaning="attention_mask")
    h = b.add("embedding", ids=ids, weight=b.weight("emb", emb))
    y = b.add("linear", name="fc", x=h, weight=b.weight("fc.w", rng.standard_normal((3, 8))
                                                         .astype(np.float32)))
    b.output(y, "y", ["batch", "seq", 3])
    model = b.build()
    lengths = rng.integers(1, 9, 11)
    mask = (np.arange(12)[None, :] < lengths[:, None]).astype(np.float32)     # [11, 12]
    tok = rng.integers(0, 20, (11, 12))
    stats = layer_inputs(model, select_layers(model, ["fc"], []), {"ids": tok, "mask": mask},
                         batch_size=4, hessian=True)["fc"]
    x = emb[tok[mask > 0]].astype(np.float64)                                # [tokens, 8]
    assert stats.rows == lengths.sum()
    np.testing.assert_allclose(stats.hessian, x.T @ x, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("method", ["sparsegpt", "wanda"])
def test_sequential_calibration_prunes_on_the_model_pruned_so_far(method):
    from optcli.runtime import Runtime
    from optcli.steps import STEPS
    from optcli.steps.base import StepContext
    from tests.conftest import make_lm
    prune = STEPS["prune"]
    ids = np.random.default_rng(0).integers(0, 20, (16, 24)).astype(np.int64)
    ctx = StepContext(calibration=lambda: {"ids": ids})
    lm = make_lm()
    ref = Runtime(lm).run({"ids": ids})["logits"]
    err = {}
    for seq in (False, True):
        m, rec = prune.apply(lm, prune.Config(method=method, sparsity=0.6, sequential=seq), ctx)
        assert len(rec.layers) == 7 and all(0.59 <= r["sparsity_after"] <= 0.63
                                            for r in rec.layers)            # rounding per row
        err[seq] = np.linalg.norm(Runtime(m).run({"ids": ids})["logits"] - ref)
    assert "sequential: 5 calibration passes" in rec.notes[-1] and err[True] < err[False]
    assert "sequential" in prune.check(prune.Config(method="magnitude", sequential=True))
    assert "sequential" in prune.check(prune.Config(method=method, scope="global",
                                                    sequential=True))
