"""The quantize step end to end: methods on small models, auto targets, pruned zeros, files,
graph rewiring by AWQ, float16/bfloat16 storage, the CLI on the LeNet-5 sample."""

import dataclasses
import json

import numpy as np
import pytest
from typer.testing import CliRunner

from optcli.cli import app
from optcli.errors import StepError
from optcli.formats import DenseTensor, QuantizedTensor, SparseTensor
from optcli.formats.bfloat16 import BFloat16Tensor
from optcli.io import load_model, save_model
from optcli.runtime import Runtime
from optcli.steps import STEPS
from optcli.steps.base import StepContext
from tests.conftest import SAMPLES, make_cnn, make_lm, make_mlp, write_yaml

quantize, prune = STEPS["quantize"], STEPS["prune"]
IDS = np.random.default_rng(0).integers(0, 20, (16, 24)).astype(np.int64)
LM_CTX = StepContext(calibration=lambda: {"ids": IDS})


def _q(model, ctx=LM_CTX, **params):
    return quantize.apply(model, quantize.Config(**params), ctx)


def _rel(model, ref):
    out = Runtime(model).run({"ids": IDS})["logits"]
    return np.linalg.norm(out - ref) / np.linalg.norm(ref)


def test_gptq_and_awq_beat_rtn_on_the_lm_and_records_name_everything():
    lm = make_lm()
    ref = Runtime(lm).run({"ids": IDS})["logits"]
    common = {"bits": 3, "granularity": "group", "group_size": 8}
    rtn, rec = _q(lm, **common)
    gptq, grec = _q(lm, method="gptq", **common)
    awq, arec = _q(lm, method="awq", **common)
    for r, g, a in zip(rec.layers, grec.layers, arec.layers):
        assert (r["method"], g["method"], a["method"]) == ("rtn", "gptq", "awq+rtn")
        assert g["rel_output_error"] <= r["rel_output_error"] * (1 + 1e-9)
        assert a["rel_output_error"] <= r["rel_output_error"] * (1 + 1e-6)
        assert r["bits"] == 3 and r["granularity"] == "group" and r["group_size"] == 8
    assert _rel(gptq, ref) < _rel(rtn, ref)
    assert any("folded into layernorm" in n for n in arec.notes)
    assert any("mul node" in n for n in arec.notes)


def test_awq_graph_keeps_the_float_function():
    """With 8-bit codes the AWQ-rewired model is the float model up to int8 noise."""
    lm = make_lm()
    ref = Runtime(lm).run({"ids": IDS})["logits"]
    out, _ = _q(lm, method="awq", bits=8, granularity="group", group_size=8)
    assert _rel(out, ref) < 0.01
    assert any(n.op == "mul" for n in out.graph.nodes)


def test_auto_meets_target_bits_and_bytes():
    lm = make_lm()
    out, rec = _q(lm, bits="auto", target_bits=5.0)
    ws = [lm.tensors[r["tensor"]] for r in rec.layers]
    after = sum(r["bytes_after"] for r in rec.layers)
    assert 8 * after / sum(w.size for w in ws) <= 5.0
    assert len({r["bits"] for r in rec.layers}) > 1 and "bits auto" in rec.notes[0]
    out, rec = _q(lm, bits="auto", target_bytes=3000)
    assert sum(r["bytes_after"] for r in rec.layers) <= 3000
    with pytest.raises(StepError, match="below the smallest"):
        _q(lm, bits="auto", target_bits=1.0)


def test_gptq_needs_calibration_and_checks_parameters():
    with pytest.raises(StepError, match="calibration"):
        _q(make_mlp(), StepContext(), method="gptq")
    assert quantize.needs_calibration(quantize.Config(method="awq"))
    assert not quantize.needs_calibration(quantize.Config(bits=4))
    assert "act_order" in quantize.check(quantize.Config(act_order=True))
    assert "target" in quantize.check(quantize.Config(bits=4, target_bits=3.0))


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
def test_pruned_zeros_survive_low_bit_quantization(bits, tmp_path):
    pruned, _ = prune.apply(make_mlp(), prune.Config(sparsity=0.7), StepContext())
    out, rec = _q(pruned, StepContext(), bits=bits, granularity="group", group_size=16)
    save_model(out, tmp_path / "q.npz")
    back = load_model(tmp_path / "q.npz")
    qmax = 2 ** (bits - 1) - 1
    for i in (1, 2, 3):
        p, t = pruned.tensors[f"fc{i}.weight"].decode(), back.tensors[f"fc{i}.weight"]
        assert isinstance(t, SparseTensor) and t.values.dtype == np.int8
        assert np.abs(t.values).max() <= qmax
        assert np.all(t.decode()[p == 0] == 0)          # (at 2 bits small kept values may
        assert t.nonzeros <= np.count_nonzero(p)         #  round to 0 as well)
        assert np.all(np.abs(t.decode() - p) <= t.scale[:, None] / 2 * (1 + 1e-6))


def test_cnn_gptq_uses_conv_hessians_and_round_trips(tmp_path):
    cnn = make_cnn()
    x = np.random.default_rng(1).standard_normal((64, 1, 8, 8)).astype(np.float32)
    out, rec = _q(cnn, StepContext(calibration=lambda: {"image": x}), method="gptq", bits=4,
                  granularity="group", group_size=4, symmetric=False, scale_dtype="float16")
    assert [r["method"] for r in rec.layers] == ["gptq", "gptq"]
    assert all(r["error_on"] == "calibration" for r in rec.layers)
    save_model(out, tmp_path / "c.npz")
    back = load_model(tmp_path / "c.npz")
    for name in ("conv1.weight", "fc.weight"):
        t = back.tensors[name]
        assert isinstance(t, QuantizedTensor) and t.packed and t.scale.dtype == np.float16
        np.testing.assert_array_equal(t.decode(), out.tensors[name].decode())


def test_im2col_matches_the_reference_conv():
    from optcli.kernels.reference.dense import conv2d
    from optcli.quantization.hessians import im2col
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((2, 3, 9, 8)), rng.standard_normal((4, 3, 3, 2))
    attrs = {"stride": [2, 1], "padding": [1, 0], "dilation": [1, 2]}
    y = conv2d(x, w, None, **attrs)                                   # [B, O, Ho, Wo]
    p = im2col(x, w.shape, attrs)                                     # [B*Ho*Wo, C*kh*kw]
    y2 = (p @ w.reshape(4, -1).T).reshape(2, y.shape[2], y.shape[3], 4).transpose(0, 3, 1, 2)
    np.testing.assert_allclose(y2, y, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("precision, cls", [("float16", DenseTensor), ("bfloat16", BFloat16Tensor)])
def test_float_precisions_halve_the_bytes_and_round_trip(precision, cls, tmp_path):
    m = make_mlp()
    out, rec = _q(m, StepContext(), precision=precision)
    save_model(out, tmp_path / "f.npz")
    back = load_model(tmp_path / "f.npz")
    for i in (1, 2, 3):
        t, w = back.tensors[f"fc{i}.weight"], m.tensors[f"fc{i}.weight"].decode()
        assert isinstance(t, cls) and t.nbytes * 2 == w.nbytes
        np.testing.assert_allclose(t.decode(), w, rtol=2 ** -8, atol=1e-7)


def test_bfloat16_rounds_to_nearest_even_and_refuses_nan():
    from optcli.errors import ModelFormatError
    t = BFloat16Tensor.from_float(np.array([1.0, 1 + 2 ** -8, 1 + 3 * 2 ** -8, -2.5], np.float32))
    np.testing.assert_array_equal(t.decode(), [1.0, 1.0, 1 + 2 ** -6, -2.5])
    with pytest.raises(ModelFormatError, match="NaN/Inf"):
        BFloat16Tensor.from_stored("w", (1,), "float32", {"data": np.array([0x7FC0], np.uint16)},
                                   {})


def test_cli_compress_lenet5_with_4bit_groups(tmp_path):
    cfg = write_yaml(tmp_path / "q4.yaml", f"""
steps:
  - quantize: {{method: gptq, bits: 4, granularity: group, group_size: 32, symmetric: false}}
calibration: {{data: {SAMPLES / 'fashion_calib.npz'}, samples: 64}}
evaluation: {{data: {SAMPLES / 'fashion_eval.npz'}, metric: top1, samples: 500}}
latency: {{batch: 8, repeats: 2, warmup: 1}}
""")
    out = tmp_path / "q4.npz"
    r = CliRunner().invoke(app, ["compress", str(SAMPLES / "lenet5.npz"), "--config", str(cfg),
                                 "-o", str(out), "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["size"]["ratio"] > 5 and doc["accuracy"]["delta"] > -0.03
    layers = doc["steps"][0]["layers"]
    assert all(x["bits"] == 4 and x["method"] == "gptq" and x["rel_output_error"] >= 0
               for x in layers)
    model = load_model(out)
    assert all(isinstance(model.tensors[x["tensor"]], QuantizedTensor) for x in layers)


def test_embedding_tables_quantize_only_when_asked():
    lm, q = make_lm(vocab=64, d=32), STEPS["quantize"]
    plain, _ = q.apply(lm, q.Config(bits=4, granularity="group", group_size=16), StepContext())
    assert plain.tensors["tok"].encoding == "dense"
    model, record = q.apply(lm, q.Config(method="gptq", bits=4, granularity="group",
                                         group_size=16, embeddings=True),
                            LM_CTX)
    rows = {r["layer"]: r for r in record.layers}
    assert rows["embedding_1"]["method"] == "rtn" and rows["attn.q"]["method"] == "gptq"
    tok, w = model.tensors["tok"], lm.tensors["tok"].decode()
    codes = tok.decode()
    for r in range(64):                     # <= 2^bits values per group, error <= scale / 2
        for g in range(2):
            cols = slice(16 * g, 16 * g + 16)
            assert len(np.unique(codes[r, cols])) <= 16
            scale = float(np.asarray(tok.scale, np.float32).reshape(64, 2)[r, g])
            assert np.abs(codes[r, cols] - w[r, cols]).max() <= scale / 2 + 1e-6
    assert tok.nbytes < lm.tensors["tok"].nbytes / 4


def test_a_table_tied_to_the_head_is_quantized_once():
    lm = make_lm(vocab=64, d=32)
    nodes = tuple(n if n.name != "head" else dataclasses.replace(
        n, inputs={**n.inputs, "weight": "tok"}) for n in lm.graph.nodes)
    tensors = {k: v for k, v in lm.tensors.items() if k != "head.w"}
    tied = lm.replace(graph=dataclasses.replace(lm.graph, nodes=nodes), tensors=tensors)
    q = STEPS["quantize"]
    model, record = q.apply(tied, q.Config(bits=8, embeddings=True), StepContext())
    assert [r["tensor"] for r in record.layers].count("tok") == 1
    assert model.tensors["tok"].encoding == "quantized"


def test_embeddings_need_fixed_integer_bits_and_selectors_may_name_tables(tmp_path):
    q = STEPS["quantize"]
    assert "embeddings" in q.check(q.Config(bits="auto", target_bits=4, embeddings=True))
    assert "embeddings" in q.check(q.Config(precision="float16", embeddings=True))
    path = tmp_path / "lm.npz"
    save_model(make_lm(), path)
    cfg = write_yaml(tmp_path / "p.yaml",
                     'steps:\n  - quantize: {bits: 8, layers: ["embedding_*"]}\n')
    res = CliRunner().invoke(app, ["compress", str(path), "--config", str(cfg), "-o",
                                   str(tmp_path / "o.npz")])
    assert res.exit_code == 2 and "matches no layer" in res.output
    cfg = write_yaml(tmp_path / "q.yaml", "steps:\n  - quantize: {bits: 8, embeddings: true, "
                     'layers: ["embedding_*"]}\n')
    res = CliRunner().invoke(app, ["compress", str(path), "--config", str(cfg), "-o",
                                   str(tmp_path / "o.npz"), "--json"])
    assert res.exit_code == 0, res.output
    assert load_model(tmp_path / "o.npz").tensors["tok"].encoding == "quantized"


def test_clip_lowers_the_output_error_and_names_itself():
    lm = make_lm()
    ref = Runtime(lm).run({"ids": IDS})["logits"]
    plain, rec_plain = _q(lm, bits=3, granularity="group", group_size=16, symmetric=False)
    clipped, rec = _q(lm, bits=3, granularity="group", group_size=16, symmetric=False,
                      clip=True)
    assert {r["method"] for r in rec.layers} == {"rtn+clip"}
    errs = [(a["rel_output_error"], b["rel_output_error"])
            for a, b in zip(rec_plain.layers, rec.layers)]
    assert sum(c for _, c in errs) < sum(p for p, _ in errs)    # (per group, not per layer,
                                                                # the search minimises)
    assert _rel(clipped, ref) < _rel(plain, ref)


def test_sequential_gptq_calibrates_on_the_model_quantized_so_far():
    lm = make_lm()
    ref = Runtime(lm).run({"ids": IDS})["logits"]
    params = dict(method="gptq", bits=3, granularity="group", group_size=16, symmetric=False)
    one_pass, _ = _q(lm, **params)
    seq, rec = _q(lm, sequential=True, **params)
    assert "sequential: 5 calibration passes" in rec.notes[-1]
    assert {r["method"] for r in rec.layers} == {"gptq"} and len(rec.layers) == 7
    assert _rel(seq, ref) < _rel(one_pass, ref)
    for bad in (dict(method="awq"), dict(method="rtn"), dict(bits="auto", target_bits=4.0)):
        assert "sequential" in quantize.check(quantize.Config(sequential=True, **bad))


@pytest.mark.parametrize("act_order", [False, True])
def test_gptq_with_clip_keeps_the_grid(act_order):
    lm = make_lm()
    model, rec = _q(lm, method="gptq", bits=3, granularity="group", group_size=16,
                    symmetric=False, act_order=act_order, clip=True)
    assert {r["method"] for r in rec.layers} == {"gptq+clip"}
    w = model.tensors["up"].decode()                     # [64, 16]: one group a row
    assert all(len(np.unique(row)) <= 8 for row in w)
    assert all(r["rel_output_error"] < 0.5 for r in rec.layers)
