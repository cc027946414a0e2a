"""Properties of the random and N:M methods, the threshold, and the prune guards."""

import numpy as np
import pytest

from optcli.builder import GraphBuilder
from optcli.errors import StepError
from optcli.io import load_model, save_model
from optcli.pruning.nm import nm_mask
from optcli.steps import STEPS
from optcli.steps.base import StepContext
from tests.conftest import make_cnn, make_mlp


def _apply(step, model, seed=0, **params):
    return STEPS[step].apply(model, STEPS[step].Config(**params), StepContext(seed=seed))


def _dense(model, name):
    return model.tensors[name].decode()


def _conv_model():
    """conv(4 -> 6, 2x2): weight [6, 4, 2, 2], 16 inputs per filter."""
    rng = np.random.default_rng(0)
    b = GraphBuilder("conv", task={"kind": "regression"})
    x = b.input("image", ["batch", 4, 5, 5])
    h = b.add("conv2d", name="conv", x=x, weight=b.weight(
        "conv.weight", rng.standard_normal((6, 4, 2, 2)).astype(np.float32)))
    b.output(h, "logits", ["batch", 6, 4, 4])
    return b.build()


@pytest.mark.parametrize("n, m", [(2, 4), (4, 8), (1, 4)])
@pytest.mark.parametrize("make, name", [(make_mlp, "fc1.weight"), (_conv_model, "conv.weight")])
def test_nm_pattern_holds_in_every_group(make, name, n, m):
    model = make()
    out, _ = _apply("prune", model, method="nm", n=n, m=m)
    w, p = _dense(model, name), _dense(out, name)
    groups_w = np.abs(w).reshape(w.shape[0], -1, m)
    groups_p = p.reshape(p.shape[0], -1, m)
    assert np.all((groups_p != 0).sum(-1) == n)             # weights are never exactly zero
    kept = np.where(groups_p != 0, groups_w, np.inf).min(-1)
    dropped = np.where(groups_p == 0, groups_w, -np.inf).max(-1)
    assert np.all(kept >= dropped)
    np.testing.assert_array_equal(p[p != 0], w[p != 0])


def test_nm_mask_groups_conv_weights_along_c_kh_kw():
    scores = np.arange(2 * 2 * 2 * 2, dtype=np.float32).reshape(2, 2, 2, 2)   # [O, C, kh, kw]
    keep = nm_mask(scores, 2, 4).reshape(2, -1)
    np.testing.assert_array_equal(keep[0], [0, 0, 1, 1, 0, 0, 1, 1])


def test_nm_needs_divisible_inputs_and_n_below_m():
    with pytest.raises(StepError, match="layer 'conv1' has 9 inputs"):
        _apply("prune", make_cnn(), method="nm", n=2, m=4)
    with pytest.raises(StepError, match="0 < n < m"):
        _apply("prune", make_mlp(), method="nm", n=4, m=4)
    with pytest.raises(StepError, match="'n'/'m' apply"):
        _apply("prune", make_mlp(), n=2, m=4)


@pytest.mark.parametrize("sparsity", [0.3, 0.9])
def test_random_reaches_exact_sparsity_and_follows_the_seed(sparsity):
    m = make_mlp()
    a, _ = _apply("prune", m, seed=1, method="random", sparsity=sparsity)
    b, _ = _apply("prune", m, seed=1, method="random", sparsity=sparsity)
    c, _ = _apply("prune", m, seed=2, method="random", sparsity=sparsity)
    for i in (1, 2, 3):
        name = f"fc{i}.weight"
        t = a.tensors[name]
        assert t.size - t.nonzeros == round(sparsity * t.size)
        np.testing.assert_array_equal(_dense(a, name), _dense(b, name))
    assert any(not np.array_equal(_dense(a, f"fc{i}.weight") == 0, _dense(c, f"fc{i}.weight") == 0)
               for i in (1, 2, 3))


def test_random_is_not_magnitude():
    m = make_mlp(sizes=(64, 256, 10))
    rnd, _ = _apply("prune", m, method="random", sparsity=0.5)
    w, p = _dense(m, "fc1.weight"), _dense(rnd, "fc1.weight")
    assert np.abs(w[p == 0]).max() > np.abs(w[p != 0]).min()


def test_threshold_prunes_exactly_below_it():
    m = make_mlp()
    out, _ = _apply("prune", m, threshold=0.1, scope="global")
    for i in (1, 2, 3):
        w, p = _dense(m, f"fc{i}.weight"), _dense(out, f"fc{i}.weight")
        np.testing.assert_array_equal(p, np.where(np.abs(w) < 0.1, 0, w))


@pytest.mark.parametrize("params, message", [
    ({"threshold": 0.1, "sparsity": 0.7}, "mutually exclusive"),
    ({"threshold": 0.1, "method": "random"}, "magnitude only"),
])
def test_threshold_conflicts_are_errors(params, message):
    with pytest.raises(StepError, match=message):
        _apply("prune", make_mlp(), **params)


def _uneven_mlp():
    """fc2's weights all far below the others': global ranking at 90 % would empty it."""
    m = make_mlp()
    w = _dense(m, "fc2.weight") * 1e-3
    return m.replace(tensors={**m.tensors, "fc2.weight": type(m.tensors["fc1.weight"])(w)})


@pytest.mark.parametrize("allow", [False, True])
def test_global_scope_empties_a_layer_only_when_allowed(allow):
    m = _uneven_mlp()
    free, _ = _apply("prune", m, sparsity=0.9, scope="global", min_keep=0)
    assert free.tensors["fc2.weight"].nonzeros == 0                   # the case is real
    out, _ = _apply("prune", m, sparsity=0.9, scope="global", min_keep=3,
                    allow_layer_removal=allow)
    w, p = _dense(m, "fc2.weight"), _dense(out, "fc2.weight")
    if allow:
        assert not p.any()
    else:
        assert np.count_nonzero(p) == 3
        np.testing.assert_array_equal(np.sort(np.abs(p[p != 0])), np.sort(np.abs(w).ravel())[-3:])


def test_min_keep_is_honoured_per_layer():
    m = make_mlp()
    plain, _ = _apply("prune", m, sparsity=0.99)
    assert [plain.tensors[f"fc{i}.weight"].nonzeros for i in (1, 2, 3)] == [20, 5, 2]
    out, _ = _apply("prune", m, sparsity=0.99, min_keep=25)
    assert [out.tensors[f"fc{i}.weight"].nonzeros for i in (1, 2, 3)] == [25, 25, 25]


@pytest.mark.parametrize("params", [{"method": "nm", "n": 2, "m": 4},
                                    {"method": "random", "sparsity": 0.8}])
def test_sparsity_survives_save_load_and_quantize(tmp_path, params):
    m = make_mlp()
    pruned, _ = _apply("prune", m, **params)
    save_model(pruned, tmp_path / "p.npz")
    back = load_model(tmp_path / "p.npz")
    q, _ = _apply("quantize", back)
    for i in (1, 2, 3):
        name = f"fc{i}.weight"
        zeros = _dense(pruned, name) == 0
        np.testing.assert_array_equal(_dense(back, name), _dense(pruned, name))
        assert np.all(_dense(q, name)[zeros] == 0)
