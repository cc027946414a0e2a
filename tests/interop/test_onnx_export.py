"""ONNX export: every op lowered, run in onnxruntime, compared with the reference kernels.

Each model is small and seeded; sequence models are run at two lengths (neither is special to
the graph, whose 'seq' dimension is symbolic) and with right padding.
"""

from __future__ import annotations

import numpy as np
import pytest

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

from optcli.builder import GraphBuilder  # noqa: E402
from optcli.errors import InputError  # noqa: E402
from optcli.formats import SparseTensor  # noqa: E402
from optcli.interop import onnx_ops  # noqa: E402
from optcli.interop.onnx_export import export_onnx  # noqa: E402
from optcli.ops import OPS  # noqa: E402
from optcli.runtime import Runtime  # noqa: E402

ATOL = 1e-4


def _w(rng: np.random.Generator, *shape: int, scale: float = 0.3) -> np.ndarray:
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def _linear(b: GraphBuilder, rng, x: str, name: str, n_in: int, n_out: int,
            bias: bool = True) -> str:
    w = b.weight(f"{name}.weight", _w(rng, n_out, n_in))
    bb = b.weight(f"{name}.bias", _w(rng, n_out)) if bias else None
    return b.add("linear", x=x, weight=w, bias=bb, name=name)


# ----------------------------------------------------------------------------- models

def mlp() -> object:
    """flatten, linear (+/- bias), relu, gelu tanh, tanh, sigmoid, concat, reshape, transpose,
    add, mul, softmax; one weight stored sparse (exported decoded)."""
    rng = np.random.default_rng(0)
    b = GraphBuilder("mlp", task={"kind": "classification"})
    x = b.add("flatten", x=b.input("image", ["batch", 1, 4, 6]))                # [B, 24]
    h1 = b.add("relu", x=_linear(b, rng, x, "fc1", 24, 16))
    h2 = b.add("gelu", x=_linear(b, rng, x, "fc2", 24, 16, bias=False),
               attrs={"approximate": "tanh"})
    h = b.add("concat", xs=[h1, b.add("tanh", x=h2)], attrs={"axis": 1})     # [B, 32]
    h = b.add("reshape", x=h, attrs={"shape": [0, 4, -1]})                     # [B, 4, 8]
    h = b.add("transpose", x=h, attrs={"perm": [0, 2, 1]})                     # [B, 8, 4]
    h = b.add("flatten", x=h)
    gate = b.add("sigmoid", x=h)
    h = b.add("add", a=b.add("mul", a=h, b=gate), b=b.weight("shift", _w(rng, 32)))
    w3 = SparseTensor.from_dense(_w(rng, 10, 32) * (rng.random((10, 32)) < 0.3))
    logits = b.add("linear", x=h, weight=b.weight("fc3.weight", w3), name="fc3")
    b.output(b.add("softmax", x=logits, attrs={"axis": -1}), "probs", ["batch", 10])
    return b.build()


def cnn() -> object:
    """conv2d (stride, padding, dilation, groups), batchnorm, max/avg pooling, global pool."""
    rng = np.random.default_rng(1)
    b = GraphBuilder("cnn", task={"kind": "classification"})
    x = b.input("image", ["batch", 2, 12, 12])
    h = b.add("conv2d", x=x, weight=b.weight("c1.w", _w(rng, 4, 2, 3, 3)),
              bias=b.weight("c1.b", _w(rng, 4)), attrs={"stride": 1, "padding": [1, 2]})
    bn = {k: b.weight(f"bn.{k}", v) for k, v in {
        "weight": _w(rng, 4) + 1, "bias": _w(rng, 4), "mean": _w(rng, 4),
        "var": rng.random(4).astype(np.float32) + 0.5}.items()}
    h = b.add("relu", x=b.add("batchnorm", x=h, **bn, attrs={"eps": 1e-3}))     # [B, 4, 12, 14]
    h = b.add("maxpool2d", x=h, attrs={"kernel": 3, "stride": 2, "padding": 1})  # [B, 4, 6, 7]
    h = b.add("conv2d", x=h, weight=b.weight("c2.w", _w(rng, 8, 2, 2, 2)),
              attrs={"groups": 2, "stride": [1, 2], "dilation": 2})             # [B, 8, 4, 3]
    a = b.add("avgpool2d", x=h, attrs={"kernel": [2, 2], "stride": 1, "padding": 1})
    c = b.add("avgpool2d", x=h, attrs={"kernel": 2, "stride": 1, "padding": 1,
                                        "count_include_pad": False})
    h = b.add("concat", xs=[a, c], attrs={"axis": 1})                           # [B, 16, 5, 4]
    pooled = b.add("global_avgpool", x=h)                                       # [B, 16]
    b.output(_linear(b, rng, pooled, "fc", 16, 5), "logits", ["batch", 5])
    return b.build()


def _block(b: GraphBuilder, rng, x: str, i: int, d: int, attn: dict, mask: str | None,
           norm: str, ffn: int) -> str:
    """One transformer layer: post-LN (BERT, norm='layernorm') or pre-norm (LLaMA)."""
    heads, kv = attn["num_heads"], attn.get("num_kv_heads") or attn["num_heads"]
    dkv = d // heads * kv
    bias = norm == "layernorm"

    def normed(v: str, tag: str) -> str:
        w = b.weight(f"l{i}.{tag}.w", 1 + _w(rng, d, scale=0.1))
        if norm == "rmsnorm":
            return b.add("rmsnorm", x=v, weight=w)
        return b.add("layernorm", x=v, weight=w, bias=b.weight(f"l{i}.{tag}.b", _w(rng, d)),
                     attrs={"eps": 1e-12})

    src = x if bias else normed(x, "n1")
    q, k, v = (_linear(b, rng, src, f"l{i}.{n}", d, o, bias)
               for n, o in (("q", d), ("k", dkv), ("v", dkv)))
    a = b.add("attention", q=q, k=k, v=v, mask=mask, attrs=attn)
    h = b.add("add", a=x, b=_linear(b, rng, a, f"l{i}.o", d, d, bias))
    if bias:   # BERT: LN after each residual, erf GELU FFN
        h = normed(h, "n1")
        f = b.add("gelu", x=_linear(b, rng, h, f"l{i}.up", d, ffn))
        return normed(b.add("add", a=h, b=_linear(b, rng, f, f"l{i}.down", ffn, d)), "n2")
    src = normed(h, "n2")   # LLaMA: SiLU-gated FFN
    f = b.add("mul", a=b.add("silu", x=_linear(b, rng, src, f"l{i}.gate", d, ffn, False)),
              b=_linear(b, rng, src, f"l{i}.up", d, ffn, False))
    return b.add("add", a=h, b=_linear(b, rng, f, f"l{i}.down", ffn, d, False))


def bert(vocab: int = 50, d: int = 16, max_len: int = 32) -> object:
    """embedding + positions, 2 post-LN layers with padding mask, meanpool, l2normalize."""
    rng = np.random.default_rng(2)
    b = GraphBuilder("bert", task={"kind": "embedding"})
    ids = b.input("input_ids", ["batch", "seq"], "int64")
    mask = b.input("attention_mask", ["batch", "seq"], "int64")
    tok = b.add("embedding", ids=ids, weight=b.weight("tok", _w(rng, vocab, d)))
    pos = b.add("embedding", ids=b.add("positions", ids=ids, attrs={"offset": 2}),
                weight=b.weight("pos", _w(rng, max_len + 2, d)))
    h = b.add("add", a=tok, b=pos)
    for i in range(2):
        h = _block(b, rng, h, i, d, {"num_heads": 4}, mask, "layernorm", 32)
    pooled = b.add("meanpool", x=h, mask=mask)
    b.output(b.add("l2normalize", x=pooled), "embedding", ["batch", d])
    return b.build()


def llama(vocab: int = 40, d: int = 32) -> object:
    """rmsnorm, SiLU FFN, causal GQA with rope 'half' then 'interleaved', a padding mask,
    tied lm head."""
    rng = np.random.default_rng(3)
    b = GraphBuilder("llama", task={"kind": "language_model"})
    ids = b.input("input_ids", ["batch", "seq"], "int64")
    mask = b.input("attention_mask", ["batch", "seq"], "int64")
    h = b.add("embedding", ids=ids, weight=b.weight("tok", _w(rng, vocab, d)))
    for i, style in enumerate(("half", "interleaved")):
        attn = {"num_heads": 4, "num_kv_heads": 2, "causal": True, "rope": style,
                "rope_base": 500.0}
        h = _block(b, rng, h, i, d, attn, mask, "rmsnorm", 48)
    h = b.add("rmsnorm", x=h, weight=b.weight("norm.w", 1 + _w(rng, d, scale=0.1)))
    b.output(b.add("linear", x=h, weight="tok", name="lm_head"), "logits",
             ["batch", "seq", vocab])
    return b.build()


# ----------------------------------------------------------------------------- checks

def _compare(model, feeds: dict[str, np.ndarray]) -> None:
    proto = export_onnx(model)
    sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    got = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds)))
    want = Runtime(model, "reference").run(feeds)
    assert set(got) == set(want)
    for name, w in want.items():
        assert got[name].shape == w.shape, name
        np.testing.assert_allclose(got[name], w, atol=ATOL, rtol=0, err_msg=name)


def _ids_and_mask(rng, batch: int, seq: int, vocab: int) -> dict[str, np.ndarray]:
    mask = np.ones((batch, seq), np.int64)
    mask[0, seq - 2:] = 0                     # right padding on the first row
    return {"input_ids": rng.integers(0, vocab, (batch, seq)), "attention_mask": mask}


def test_mlp_matches_reference():
    x = np.random.default_rng(10).standard_normal((3, 1, 4, 6)).astype(np.float32)
    _compare(mlp(), {"image": x})


def test_cnn_matches_reference():
    x = np.random.default_rng(11).standard_normal((2, 2, 12, 12)).astype(np.float32)
    _compare(cnn(), {"image": x})


@pytest.mark.parametrize("seq", [5, 11])
def test_bert_matches_reference(seq):
    _compare(bert(), _ids_and_mask(np.random.default_rng(seq), 2, seq, 50))


@pytest.mark.parametrize("seq", [6, 13])
def test_llama_matches_reference(seq):
    # left padding on row 1: its first query sees no key under the causal mask (zeros out)
    mask = np.ones((2, seq), np.int64)
    mask[1, :3] = 0
    ids = np.random.default_rng(seq).integers(0, 40, (2, seq))
    _compare(llama(), {"input_ids": ids, "attention_mask": mask})


def test_float16_io_is_cast_around_float32_math():
    rng = np.random.default_rng(4)
    b = GraphBuilder("half", task={"kind": "regression"})
    h = _linear(b, rng, b.input("x", ["batch", 4], "float16"), "fc", 4, 3)
    b.output(b.add("relu", x=h), "y", ["batch", 3], "float16")
    model = b.build()
    x = rng.standard_normal((2, 4)).astype(np.float16)
    sess = ort.InferenceSession(export_onnx(model).SerializeToString(),
                                providers=["CPUExecutionProvider"])
    (got,) = sess.run(None, {"x": x})
    assert got.dtype == np.float16
    want = Runtime(model, "reference").run({"x": x})["y"]
    np.testing.assert_allclose(got.astype(np.float32), want, atol=2e-3)


def test_symbolic_dims_and_io_names():
    proto = export_onnx(bert())
    (ids, mask), (out,) = proto.graph.input, proto.graph.output
    assert [ids.name, mask.name, out.name] == ["input_ids", "attention_mask", "embedding"]
    assert [d.dim_param for d in ids.type.tensor_type.shape.dim] == ["batch", "seq"]
    assert ids.type.tensor_type.elem_type == onnx.TensorProto.INT64
    assert out.type.tensor_type.shape.dim[1].dim_value == 16


def test_every_op_has_a_lowering():
    assert set(onnx_ops.ONNX_OPS) == set(OPS)


def test_unmapped_op_names_the_node(monkeypatch):
    monkeypatch.delitem(onnx_ops.ONNX_OPS, "softmax")
    with pytest.raises(InputError, match="node 'softmax_1'"):
        export_onnx(mlp())


def test_missing_onnx_is_an_input_error(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "onnx", None)
    with pytest.raises(InputError, match=r"optcli\[onnx\]"):
        export_onnx(mlp())
