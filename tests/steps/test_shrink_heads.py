"""Attention-head removal in the shrink step: the shrunk model equals the dense model whose
removed heads' o-projection input columns are zeroed; head counts drop, grouped KV loses whole
groups, at least one head stays, the input is untouched, other patterns are skipped with a note."""

import numpy as np
import pytest

from optcli.builder import GraphBuilder
from optcli.formats import DenseTensor
from optcli.runtime import Runtime
from optcli.steps import STEPS
from optcli.steps.base import StepContext
from tests.conftest import make_lm, stored_arrays

CTX = StepContext(seed=0)


def _apply(model, **params):
    return STEPS["shrink"].apply(model, STEPS["shrink"].Config(**params), CTX)


def _attn_block(heads=4, kv_heads=2, rope="half", dh=4, seed=0, o_reads_twice=False):
    """y = x + o(attention(q(x), k(x), v(x))) on x[batch, seq, d]; q and v have biases."""
    rng = np.random.default_rng(seed)
    r = lambda *s: (0.5 * rng.standard_normal(s)).astype(np.float32)  # noqa: E731
    d, kv = heads * dh, kv_heads or heads
    b = GraphBuilder("attn", task={"kind": "regression"})
    x = b.input("x", ["batch", "seq", d])
    q = b.add("linear", name="q", x=x, weight=b.weight("q.w", r(heads * dh, d)),
              bias=b.weight("q.b", r(heads * dh)))
    k = b.add("linear", name="k", x=x, weight=b.weight("k.w", r(kv * dh, d)))
    v = b.add("linear", name="v", x=x, weight=b.weight("v.w", r(kv * dh, d)),
              bias=b.weight("v.b", r(kv * dh)))
    a = b.add("attention", name="attn", q=q, k=k, v=v,
              attrs={"num_heads": heads, "num_kv_heads": kv_heads, "causal": True, "rope": rope})
    o = b.add("linear", name="o", x=a, weight=b.weight("o.w", r(d, d)), bias=b.weight("o.b", r(d)))
    y = b.add("add", a=x, b=o)
    if o_reads_twice:
        y = b.add("add", a=y, b=a)
    b.output(y, "y", ["batch", "seq", d])
    return b.build()


def _zeroed(model, record):
    """The dense model with each removed head's Dv input columns of o set to zero."""
    tensors = dict(model.tensors)
    for row in record.layers:
        if "removed_heads" not in row:
            continue
        t = model.graph.node(row["heads"][3]).inputs["weight"]
        w = tensors[t].decode().copy()
        dv = w.shape[1] // row["heads_before"]
        for h in row["removed_heads"]:
            w[:, h * dv:(h + 1) * dv] = 0
        tensors[t] = DenseTensor(w)
    return model.replace(tensors=tensors)


def _feeds(model, seed=3):
    rng = np.random.default_rng(seed)
    vi = model.graph.inputs[0]
    if vi.dtype == "int64":
        return {vi.name: rng.integers(0, 20, (3, 7))}
    return {vi.name: rng.standard_normal((3, 7, vi.shape[-1])).astype(np.float32)}


def _assert_equals_zeroed(model, out, record):
    feeds = _feeds(model)
    want = Runtime(_zeroed(model, record), kernels="reference").run(feeds)
    got = Runtime(out, kernels="reference").run(feeds)
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-5, atol=1e-5)



def _unchanged(model, before):
    after = stored_arrays(model)
    return after.keys() == before.keys() and all(
        np.array_equal(a, before[t][k]) for t, arrs in after.items() for k, a in arrs.items())


def test_lm_loses_one_of_two_heads_and_equals_the_zeroed_model():
    m = make_lm()
    before = stored_arrays(m)
    out, rec = _apply(m, sparsity=0.0, heads=0.5)
    row = rec.layers[0]
    assert row["layer"] == "attention_1" and row["heads"] == ["attn.q", "attn.k", "attn.v",
                                                              "attn.o"]
    assert (row["heads_before"], row["heads_after"], len(row["removed_heads"])) == (2, 1, 1)
    assert out.graph.node("attention_1").attrs["num_heads"] == 1
    assert out.graph.node("attention_1").attrs.get("num_kv_heads") is None
    assert [out.tensors[t].shape for t in ("attn.q.w", "attn.k.w", "attn.v.w", "attn.o.w")] == [
        (8, 16), (8, 16), (8, 16), (16, 8)]
    assert row["params_after"] == row["params_before"] // 2
    _assert_equals_zeroed(m, out, rec)
    assert _unchanged(m, before)


@pytest.mark.parametrize("rope", ["none", "half", "interleaved"])
@pytest.mark.parametrize("heads,kv_heads,fraction,removed", [
    (4, 2, 0.5, 2), (4, 2, 0.9, 2), (2, None, 0.5, 1), (4, None, 0.5, 2), (4, 1, 0.9, 0)])
def test_shrunk_block_equals_the_zeroed_model(rope, heads, kv_heads, fraction, removed):
    m = _attn_block(heads, kv_heads, rope)
    before = stored_arrays(m)
    out, rec = _apply(m, sparsity=0.0, heads=fraction)
    row = [r for r in rec.layers if r["layer"] == "attn"][0]
    assert row["heads_after"] == heads - removed >= 1 and len(row["removed_heads"]) == removed
    attrs = out.graph.node("attn").attrs
    assert attrs["num_heads"] == heads - removed and attrs.get("scale") is None
    if kv_heads is not None:       # whole groups: H/KV query heads per removed kv head
        rep = heads // kv_heads
        assert attrs["num_kv_heads"] == kv_heads - removed // rep == row["kv_heads_after"]
        groups = {h // rep for h in row["removed_heads"]}
        assert sorted(row["removed_heads"]) == [g * rep + i for g in sorted(groups)
                                                for i in range(rep)]
    kept = heads - removed
    assert out.tensors["q.b"].shape == (kept * 4,)
    assert out.tensors["o.w"].shape == (heads * 4, kept * 4)
    assert out.tensors["v.b"].shape == (out.tensors["k.w"].shape[0],)
    _assert_equals_zeroed(m, out, rec)
    assert _unchanged(m, before)


def test_heads_with_the_smallest_o_columns_go():
    m = _attn_block(4, None, "none")
    w = m.tensors["o.w"].decode().copy()
    w[:, 8:12] *= 0.01                                   # head 2 nearly silent
    m = m.replace(tensors={**m.tensors, "o.w": DenseTensor(w)})
    _, rec = _apply(m, sparsity=0.0, heads=0.25, norm="l2")
    assert rec.layers[0]["removed_heads"] == [2]


def test_heads_off_by_default_and_composes_with_units():
    m = make_lm()
    out, rec = _apply(m, sparsity=0.5)
    assert out.graph.node("attention_1").attrs["num_heads"] == 2
    assert not any("removed_heads" in r for r in rec.layers)
    out, rec = _apply(m, sparsity=0.5, heads=0.5)
    assert [r["layer"] for r in rec.layers] == ["attention_1", "mlp.up"]
    assert out.tensors["up"].shape == (32, 16) and out.tensors["attn.o.w"].shape == (16, 8)
    assert "attn.q: output reaches attention 'attention_1'; not shrunk" in rec.notes


def test_unmatched_patterns_are_skipped_with_a_note():
    m = _attn_block(o_reads_twice=True)
    out, rec = _apply(m, sparsity=0.0, heads=0.5)
    assert "attn: output does not go straight into one linear; heads not removed" in rec.notes
    assert out.graph.node("attn").attrs["num_heads"] == 4
    _, rec = _apply(make_lm(), sparsity=0.0, heads=0.5, exclude=["attn.k"])
    assert "attention_1: projection 'attn.k' is not selected; heads not removed" in rec.notes
    assert not rec.layers or all("removed_heads" not in r for r in rec.layers)
