"""Properties of the shrink step: exact unit counts, equality with the dense model whose removed
units are zeroed, smaller shapes, purity, unshrinkable layers skipped, composition."""

import numpy as np
import pytest

from optcli.builder import GraphBuilder
from optcli.formats import DenseTensor
from optcli.io import load_model, save_model
from optcli.runtime import Runtime
from optcli.steps import STEPS
from optcli.steps.base import StepContext
from tests.conftest import SAMPLES, make_cnn, make_lm, make_mlp, stored_arrays

CTX = StepContext(seed=0)


def _apply(step, model, **params):
    return STEPS[step].apply(model, STEPS[step].Config(**params), CTX)


def _zeroed(model, record):
    """The dense model with every removed row (and bias entry) of every group set to zero."""
    tensors = dict(model.tensors)
    for row in record.layers:
        for member in row["group"]:
            node = model.graph.node(member)
            for role in ("weight", "bias"):
                if role in node.inputs:
                    a = tensors[node.inputs[role]].decode()
                    a[row["removed_units"]] = 0
                    tensors[node.inputs[role]] = DenseTensor(a)
    return model.replace(tensors=tensors)


def _feeds(model, n=5, seed=3):
    rng = np.random.default_rng(seed)
    vi = model.graph.inputs[0]
    if vi.dtype == "int64":
        return {vi.name: rng.integers(0, 20, (n, 7))}
    shape = [n if isinstance(d, str) else d for d in vi.shape]
    return {vi.name: (rng.standard_normal(shape) * (100 if shape[-1] == 28 else 1)
                      ).astype(np.float32)}


def _assert_equals_zeroed(model, out, record):
    feeds = _feeds(model)
    want = Runtime(_zeroed(model, record), kernels="reference").run(feeds)
    got = Runtime(out, kernels="reference").run(feeds)
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-5, atol=1e-5)



def _params(model):
    return sum(t.size for t in model.tensors.values())


def _gated_ffn(seed=0, d=8, f=12, sigmoid_gate=False):
    """x + down(silu(gate(x)) * up(x)), LLaMA-style, on [batch, d] features."""
    rng = np.random.default_rng(seed)
    r = lambda *s: rng.standard_normal(s).astype(np.float32)  # noqa: E731
    b = GraphBuilder("ffn", task={"kind": "regression"})
    x = b.input("x", ["batch", d])
    g = b.add("linear", name="gate", x=x, weight=b.weight("gate.w", r(f, d)))
    u = b.add("linear", name="up", x=x, weight=b.weight("up.w", r(f, d)),
              bias=b.weight("up.b", r(f)))
    h = b.add("mul", a=b.add("sigmoid" if sigmoid_gate else "silu", x=g), b=u)
    y = b.add("add", a=x, b=b.add("linear", name="down", x=h, weight=b.weight("down.w", r(d, f))))
    b.output(y, "y", ["batch", d])
    return b.build()


def _bn_sigmoid_cnn(pad2=0, seed=0):
    """conv1 -> batchnorm -> sigmoid -> conv2 (padding pad2) -> flatten -> fc: removed units
    are nonzero after batchnorm/sigmoid, so their constant must be folded into conv2's bias."""
    rng = np.random.default_rng(seed)
    r = lambda *s: rng.standard_normal(s).astype(np.float32)  # noqa: E731
    b = GraphBuilder("bncnn", task={"kind": "classification"})
    h = b.add("conv2d", name="conv1", x=b.input("image", ["batch", 1, 8, 8]),
              weight=b.weight("c1.w", r(6, 1, 3, 3)))
    h = b.add("batchnorm", x=h, weight=b.weight("bn.w", r(6)), bias=b.weight("bn.b", r(6)),
              mean=b.weight("bn.m", r(6)), var=b.weight("bn.v", 1 + r(6) ** 2))
    h = b.add("conv2d", name="conv2", x=b.add("sigmoid", x=h), attrs={"padding": pad2},
              weight=b.weight("c2.w", r(4, 6, 3, 3)))
    n = 4 * (6 - 2 + 2 * pad2) ** 2
    b.output(b.add("linear", name="fc", x=b.add("flatten", x=b.add("relu", x=h)),
                   weight=b.weight("fc.w", r(3, n))), "logits", ["batch", 3])
    return b.build()


MODELS = {"mlp": make_mlp, "cnn": make_cnn, "lm": make_lm, "ffn": _gated_ffn,
          "bncnn": _bn_sigmoid_cnn, "lenet300": lambda: load_model(SAMPLES / "lenet300.npz")}
SHRUNK = {"mlp": {"fc1": 32, "fc2": 16}, "cnn": {"conv1": 4}, "lm": {"mlp.up": 64},
          "ffn": {"gate": 12}, "bncnn": {"conv1": 6, "conv2": 4},
          "lenet300": {"fc1": 300, "fc2": 100}}


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("sparsity", [0.0, 0.3, 0.5, 0.9])
def test_shrunk_model_equals_dense_model_with_units_zeroed(name, sparsity):
    m = MODELS[name]()
    before = stored_arrays(m)
    out, rec = _apply("shrink", m, sparsity=sparsity)
    assert {r["layer"]: r["units_before"] for r in rec.layers} == SHRUNK[name]
    for r in rec.layers:
        k = min(round(sparsity * r["units_before"]), r["units_before"] - 1)   # min_keep 1
        assert r["units_after"] == r["units_before"] - k
        assert len(r["removed_units"]) == k
        w = out.tensors[m.graph.node(r["layer"]).inputs["weight"]]
        assert w.shape[0] == r["units_after"] and w.encoding == "dense"
        assert r["params_after"] <= r["params_before"]
    _assert_equals_zeroed(m, out, rec)
    assert (_params(out) < _params(m)) == (sparsity >= 0.3)
    after = stored_arrays(m)
    assert after.keys() == before.keys() and all(
        np.array_equal(a, before[t][k]) for t, arrs in after.items() for k, a in arrs.items())


@pytest.mark.parametrize("name", sorted(MODELS))
def test_output_layer_is_never_shrunk(name):
    m = MODELS[name]()
    out, rec = _apply("shrink", m, sparsity=0.5)
    last = [n for n in m.graph.nodes if n.outputs[0] == m.graph.outputs[0].name][0]
    assert last.name not in {g for r in rec.layers for g in r["group"]}
    if last.op in ("linear", "conv2d"):
        assert f"{last.name}: output is a graph output; not shrunk" in rec.notes
    assert [v.name for v in out.graph.outputs] == [v.name for v in m.graph.outputs]


def test_lm_attention_and_residual_layers_are_skipped_with_a_note():
    _, rec = _apply("shrink", make_lm(), sparsity=0.5)
    assert "attn.q: output reaches attention 'attention_1'; not shrunk" in rec.notes
    assert any(n.startswith("mlp.down: output reaches add") for n in rec.notes)


def test_gated_ffn_removes_the_same_channels_from_gate_and_up():
    m = _gated_ffn()
    out, rec = _apply("shrink", m, sparsity=0.5)
    assert rec.layers[0]["group"] == ["gate", "up"]
    assert [out.tensors[t].shape for t in ("gate.w", "up.w", "up.b", "down.w")] == [
        (6, 8), (6, 8), (6,), (8, 6)]
    _, rec = _apply("shrink", m, sparsity=0.5, exclude=["gate"])
    assert "up: gated with 'gate', which is not selected; not shrunk" in rec.notes


def test_constants_of_removed_units_fold_into_a_new_bias_and_padding_blocks_it():
    out, _ = _apply("shrink", _bn_sigmoid_cnn(), sparsity=0.5)
    assert out.graph.node("conv2").inputs["bias"] in out.tensors
    out, rec = _apply("shrink", _bn_sigmoid_cnn(pad2=1), sparsity=0.5)
    assert "conv1: removed units are nonzero at padded conv2d 'conv2'; not shrunk" in rec.notes
    assert out.tensors["c1.w"].shape == (6, 1, 3, 3)


def test_min_keep_norm_and_exclude():
    m = make_mlp()
    _, rec = _apply("shrink", m, sparsity=0.99, min_keep=3, norm="l2", exclude=["fc2"])
    assert [(r["layer"], r["units_after"]) for r in rec.layers] == [("fc1", 3)]
    w = m.tensors["fc1.weight"].decode()
    assert set(rec.layers[0]["removed_units"]) == set(np.argsort(np.linalg.norm(w, axis=1))[:29])


def test_quantized_input_is_decoded_and_stored_dense(tmp_path):
    m, _ = _apply("quantize", make_mlp())
    out, rec = _apply("shrink", m, sparsity=0.5)
    assert "fc1.weight: int8/channel decoded and stored dense f32" in rec.notes
    assert out.tensors["fc1.weight"].encoding == "dense"
    _assert_equals_zeroed(m, out, rec)


def test_save_load_round_trip_and_a_following_quantize(tmp_path):
    m = load_model(SAMPLES / "lenet300.npz")
    out, _ = _apply("shrink", m, sparsity=0.5, layers=["fc1", "fc2"])
    save_model(out, tmp_path / "s.npz")
    back = load_model(tmp_path / "s.npz")
    feeds = _feeds(m)
    np.testing.assert_array_equal(Runtime(back).run(feeds)["logits"],
                                  Runtime(out).run(feeds)["logits"])
    q, rec = _apply("quantize", back)
    assert q.tensors["fc1.weight"].shape == (150, 784) and rec.layers
    np.testing.assert_allclose(Runtime(q).run(feeds)["logits"], Runtime(out).run(feeds)["logits"],
                               atol=0.3)
