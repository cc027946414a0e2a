"""Fast kernels against the reference oracle: every op, seeded random shapes and edge cases
(batch 1, odd sizes, strided/padded/dilated/grouped conv, padded pools, causal + GQA + rotary
+ padding-masked attention), plus the shared error contract."""

import numpy as np
import pytest

from optcli.kernels.fast import FAST
from optcli.kernels.reference import REFERENCE
from optcli.ops import OPS

TIGHT = dict(rtol=1e-5, atol=1e-5)
SUMS = dict(rtol=1e-4, atol=1e-4)       # a different summation order (BLAS, blocking)


def rnd(seed, *shape, scale=1.0):
    return (scale * np.random.default_rng(seed).standard_normal(shape)).astype(np.float32)


def keep_mask(seed, B, T, min_keep=1):
    """A [B, T] int 0/1 padding mask (right padding, at least min_keep tokens per row)."""
    lengths = np.random.default_rng(seed).integers(min_keep, T + 1, B)
    return (np.arange(T)[None, :] < lengths[:, None]).astype(np.int64)


def conv_case(seed, B, C, co, H, W, k, groups=1, bias=True, **attrs):
    kh, kw = (k, k) if isinstance(k, int) else k
    inputs = {"x": rnd(seed, B, C, H, W), "weight": rnd(seed + 1, co, C // groups, kh, kw)}
    if bias:
        inputs["bias"] = rnd(seed + 2, co)
    return "conv2d", inputs, {"groups": groups, **attrs}, SUMS


def attn_case(seed, B, T, H, dh, kv=None, S=None, dv=None, mask=None, **attrs):
    kv, S, dv = kv or H, S or T, dv or dh
    inputs = {"q": rnd(seed, B, T, H * dh), "k": rnd(seed + 1, B, S, kv * dh),
              "v": rnd(seed + 2, B, S, kv * dv)}
    if mask is not None:
        inputs["mask"] = mask
    return "attention", inputs, {"num_heads": H, "num_kv_heads": kv, **attrs}, SUMS


CASES = {
    "linear-b1": ("linear", {"x": rnd(0, 1, 784), "weight": rnd(1, 300, 784, scale=0.05),
                             "bias": rnd(2, 300)}, {}, SUMS),
    "linear-3d-nobias": ("linear", {"x": rnd(3, 2, 7, 33), "weight": rnd(4, 5, 33)}, {}, SUMS),
    "linear-many-rows": ("linear", {"x": rnd(5, 700, 24), "weight": rnd(6, 400, 24),
                                    "bias": rnd(7, 400)}, {}, SUMS),
    "conv-lenet1-b1": conv_case(10, 1, 1, 6, 12, 12, 5, padding=2),
    "conv-s2-p1-d2-g2": conv_case(11, 2, 4, 6, 11, 9, 3, groups=2, stride=2, padding=1,
                                  dilation=2),
    "conv-depthwise": conv_case(12, 3, 4, 4, 7, 8, 3, groups=4, padding=1),
    "conv-1x1": conv_case(13, 3, 5, 7, 6, 5, 1),
    "conv-rect-nobias": conv_case(14, 2, 3, 4, 9, 8, [3, 2], bias=False, stride=[2, 1],
                                  padding=[1, 0], dilation=[1, 2]),
    "conv-batch-blocks": conv_case(15, 40, 2, 3, 10, 10, 3, padding=1),
    "maxpool-2": ("maxpool2d", {"x": rnd(20, 2, 3, 8, 8)}, {"kernel": 2}, TIGHT),
    "maxpool-odd-floor": ("maxpool2d", {"x": rnd(21, 1, 2, 7, 9)}, {"kernel": 2}, TIGHT),
    "maxpool-3-s2-p1": ("maxpool2d", {"x": rnd(22, 2, 2, 9, 7)},
                        {"kernel": 3, "stride": 2, "padding": 1}, TIGHT),
    "avgpool-3-s2-p1-incl": ("avgpool2d", {"x": rnd(23, 2, 2, 9, 7)},
                             {"kernel": 3, "stride": 2, "padding": 1}, TIGHT),
    "avgpool-3-s2-p1-excl": ("avgpool2d", {"x": rnd(23, 2, 2, 9, 7)},
                             {"kernel": 3, "stride": 2, "padding": 1,
                              "count_include_pad": False}, TIGHT),
    "avgpool-rect": ("avgpool2d", {"x": rnd(24, 1, 3, 6, 9)},
                     {"kernel": [2, 3], "stride": [1, 2]}, TIGHT),
    "global-avgpool": ("global_avgpool", {"x": rnd(25, 3, 4, 5, 6)}, {}, TIGHT),
    "flatten-1": ("flatten", {"x": rnd(30, 2, 3, 4, 5)}, {"axis": 1}, TIGHT),
    "flatten-0": ("flatten", {"x": rnd(31, 2, 3)}, {"axis": 0}, TIGHT),
    "flatten-3": ("flatten", {"x": rnd(32, 2, 3, 4)}, {"axis": 3}, TIGHT),
    "reshape-onnx": ("reshape", {"x": rnd(33, 2, 3, 4)}, {"shape": [0, -1, 2]}, TIGHT),
    "transpose": ("transpose", {"x": rnd(34, 2, 3, 4)}, {"perm": [2, 0, 1]}, TIGHT),
    "concat": ("concat", {"xs": [rnd(35, 2, 3), rnd(36, 2, 5)]}, {"axis": -1}, TIGHT),
    "relu": ("relu", {"x": rnd(40, 3, 50)}, {}, TIGHT),
    "gelu-erf-blocks": ("gelu", {"x": rnd(41, 70_000, scale=4)}, {"approximate": "none"},
                        TIGHT),
    "gelu-erf-extremes": ("gelu", {"x": np.array([-1e4, -30, -8, -5.6, 0, 1e-8, 5.6, 30, 1e4],
                                                 np.float32)}, {}, TIGHT),
    "gelu-tanh": ("gelu", {"x": rnd(42, 4, 333, scale=5)}, {"approximate": "tanh"}, TIGHT),
    "silu": ("silu", {"x": rnd(43, 5, 77, scale=30)}, {}, TIGHT),
    "tanh": ("tanh", {"x": rnd(44, 5, 77, scale=3)}, {}, TIGHT),
    "sigmoid-extremes": ("sigmoid", {"x": rnd(45, 5, 77, scale=60)}, {}, TIGHT),
    "softmax-last-blocks": ("softmax", {"x": rnd(46, 300, 301, scale=10)}, {}, TIGHT),
    "softmax-axis1": ("softmax", {"x": rnd(47, 2, 5, 3)}, {"axis": 1}, TIGHT),
    "add-broadcast": ("add", {"a": rnd(48, 2, 3, 4), "b": rnd(49, 4)}, {}, TIGHT),
    "mul-broadcast": ("mul", {"a": rnd(50, 2, 1, 4), "b": rnd(51, 3, 1)}, {}, TIGHT),
    "add-int": ("add", {"a": np.arange(6).reshape(2, 3), "b": np.array([1, 2, 3])}, {}, TIGHT),
    "layernorm-offset-blocks": ("layernorm", {"x": rnd(60, 2, 300, 384) + 50,
                                              "weight": rnd(61, 384), "bias": rnd(62, 384)},
                                {"eps": 1e-12}, SUMS),      # float32 mean of |mean| >> std
    "layernorm-nobias": ("layernorm", {"x": rnd(63, 1, 7), "weight": rnd(64, 7)}, {}, TIGHT),
    "rmsnorm": ("rmsnorm", {"x": rnd(65, 3, 4, 16), "weight": rnd(66, 16)}, {}, TIGHT),
    "batchnorm-4d": ("batchnorm", {"x": rnd(67, 2, 3, 4, 5), "weight": rnd(68, 3),
                                   "bias": rnd(69, 3), "mean": rnd(70, 3),
                                   "var": np.abs(rnd(71, 3)) + 0.1}, {}, TIGHT),
    "batchnorm-2d": ("batchnorm", {"x": rnd(72, 4, 6), "weight": rnd(73, 6), "bias": rnd(74, 6),
                                   "mean": rnd(75, 6), "var": np.abs(rnd(76, 6)) + 0.1}, {}, TIGHT),
    "embedding": ("embedding", {"ids": np.array([[0, 3, 9], [9, 9, 1]]),
                                "weight": rnd(80, 10, 4)}, {}, TIGHT),
    "positions": ("positions", {"ids": np.zeros((2, 5), np.int64)}, {"offset": 3}, TIGHT),
    "meanpool-mask": ("meanpool", {"x": rnd(81, 3, 6, 4),
                                   "mask": np.array([[1, 1, 0, 0, 0, 0], [1] * 6, [0] * 6])},
                      {}, TIGHT),
    "meanpool-nomask": ("meanpool", {"x": rnd(82, 2, 5, 3)}, {}, TIGHT),
    "l2normalize": ("l2normalize", {"x": np.concatenate([rnd(83, 3, 8), np.zeros((1, 8), "f4")])},
                    {}, TIGHT),
    "attn-plain-b1": attn_case(90, 1, 6, 2, 8),
    "attn-causal-gqa": attn_case(91, 2, 7, 4, 8, kv=2, causal=True),
    "attn-mqa-mask": attn_case(92, 3, 6, 4, 4, kv=1, mask=keep_mask(1, 3, 6)),
    "attn-rope-half": attn_case(93, 2, 9, 2, 8, rope="half"),
    "attn-rope-interleaved": attn_case(94, 2, 9, 2, 8, rope="interleaved", rope_base=500.0),
    "attn-all": attn_case(95, 3, 8, 6, 6, kv=3, mask=keep_mask(2, 3, 8), causal=True,
                          rope="half", scale=0.3),
    "attn-cross-dv": attn_case(96, 2, 5, 2, 4, S=7, dv=3, mask=keep_mask(3, 2, 7)),
    "attn-fully-masked": attn_case(97, 2, 4, 2, 4, mask=np.array([[1, 1, 0, 0], [0, 0, 0, 0]]),
                                   causal=True),
}


def _run(table, op, inputs, attrs):
    return table[op](**inputs, **OPS[op].resolve_attrs(attrs))


def test_both_tables_cover_every_op():
    assert set(REFERENCE) == set(FAST) == set(OPS)


def test_every_op_has_a_case():
    assert {c[0] for c in CASES.values()} == set(OPS)


@pytest.mark.parametrize("name", list(CASES))
def test_fast_matches_reference(name):
    op, inputs, attrs, tol = CASES[name]
    want = _run(REFERENCE, op, inputs, attrs)
    got = _run(FAST, op, inputs, attrs)
    assert got.shape == want.shape
    assert got.dtype == want.dtype
    assert np.isfinite(got).all() if got.dtype.kind == "f" else True
    np.testing.assert_allclose(got, want, **tol)


ERRORS = [
    ("linear", {"x": rnd(0, 2, 783), "weight": rnd(1, 10, 784)}, {},
     "linear: x has 783 features, weight expects 784"),
    ("conv2d", {"x": rnd(0, 1, 3, 8, 8), "weight": rnd(1, 4, 2, 3, 3)}, {},
     "conv2d: x has 3 channels, weight expects 2"),
    ("conv2d", {"x": rnd(0, 1, 4, 8, 8), "weight": rnd(1, 3, 2, 3, 3)}, {"groups": 2},
     "do not split into 2 groups"),
    ("conv2d", {"x": rnd(0, 1, 1, 4, 4), "weight": rnd(1, 1, 1, 5, 5)}, {},
     "does not fit input size 4"),
    ("maxpool2d", {"x": rnd(0, 1, 1, 4, 4)}, {"kernel": 2, "padding": 2}, "at most half"),
    ("reshape", {"x": rnd(0, 2, 3)}, {"shape": [4, -1]}, "reshape: cannot infer"),
    ("transpose", {"x": rnd(0, 2, 3)}, {"perm": [0, 0]}, "not a permutation"),
    ("concat", {"xs": [rnd(0, 2, 3), rnd(1, 3, 3)]}, {"axis": 1}, "concat: cannot join"),
    ("add", {"a": rnd(0, 2, 3), "b": rnd(1, 4)}, {}, "add: shapes [2, 3] and [4]"),
    ("layernorm", {"x": rnd(0, 2, 5), "weight": rnd(1, 4)}, {}, "layernorm: weight shape [4]"),
    ("batchnorm", {"x": rnd(0, 2, 3, 4), "weight": rnd(1, 2), "bias": rnd(2, 3),
                   "mean": rnd(3, 3), "var": rnd(4, 3)}, {}, "batchnorm: weight shape [2]"),
    ("embedding", {"ids": np.array([[1, 12]]), "weight": rnd(0, 10, 4)}, {},
     "token id 12 is out of range for vocabulary size 10"),
    ("embedding", {"ids": np.array([[-1, 2]]), "weight": rnd(0, 10, 4)}, {}, "token id -1"),
    ("attention", {"q": rnd(0, 1, 3, 8), "k": rnd(1, 1, 3, 8), "v": rnd(2, 1, 3, 8)},
     {"num_heads": 3}, "do not split into 3 query"),
    ("attention", {"q": rnd(0, 1, 3, 8), "k": rnd(1, 1, 3, 8), "v": rnd(2, 1, 3, 8)},
     {"num_heads": 4, "num_kv_heads": 3}, "4 heads do not group into 3 kv heads"),
    ("attention", {"q": rnd(0, 1, 3, 8), "k": rnd(1, 1, 4, 8), "v": rnd(2, 1, 4, 8)},
     {"num_heads": 2, "causal": True}, "causal needs equal"),
    ("attention", {"q": rnd(0, 1, 3, 6), "k": rnd(1, 1, 3, 6), "v": rnd(2, 1, 3, 6)},
     {"num_heads": 2, "rope": "half"}, "even head dim"),
    ("meanpool", {"x": rnd(0, 2, 3, 4), "mask": np.ones((2, 4))}, {}, "meanpool: mask shape"),
]


@pytest.mark.parametrize("table", [REFERENCE, FAST], ids=["reference", "fast"])
@pytest.mark.parametrize("op, inputs, attrs, message", ERRORS,
                         ids=[f"{e[0]}-{i}" for i, e in enumerate(ERRORS)])
def test_bad_shapes_raise_the_same_clear_valueerror(table, op, inputs, attrs, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        _run(table, op, inputs, attrs)


def _chain(table, x, p):
    """LeNet-style: conv(pad) -> relu -> maxpool -> conv -> relu -> avgpool -> flatten -> linear."""
    h = table["conv2d"](x, p["c1"], p["b1"], stride=1, padding=2, dilation=1, groups=1)
    h = table["maxpool2d"](table["relu"](h), kernel=2, stride=None, padding=0)
    h = table["conv2d"](h, p["c2"], p["b2"], stride=1, padding=0, dilation=1, groups=1)
    h = table["avgpool2d"](table["gelu"](h, approximate="none"), kernel=2, stride=None,
                           padding=0, count_include_pad=True)
    h = table["conv2d"](h, p["c3"], None, stride=1, padding=0, dilation=1, groups=1)   # 1x1
    return table["linear"](table["flatten"](h, axis=1), p["w"], p["b"])


@pytest.mark.parametrize("batch", [1, 5])
def test_channel_major_views_flow_through_a_cnn(batch):
    """Fast conv returns NCHW views of channel-major memory; every consumer must accept them."""
    p = {"c1": rnd(1, 4, 1, 5, 5), "b1": rnd(2, 4), "c2": rnd(3, 6, 4, 3, 3), "b2": rnd(4, 6),
         "c3": rnd(5, 3, 6, 1, 1), "w": rnd(6, 7, 12), "b": rnd(7, 7)}
    x = rnd(0, batch, 1, 12, 12)
    np.testing.assert_allclose(_chain(FAST, x, p), _chain(REFERENCE, x, p), **SUMS)


@pytest.mark.parametrize("op", ["relu", "gelu", "silu", "sigmoid", "softmax", "layernorm"])
def test_strided_and_transposed_inputs(op):
    x = rnd(0, 6, 10, 8)[:, ::2].transpose(1, 0, 2)            # gaps and a transpose
    inputs = {"x": x, **({"weight": rnd(1, 8)} if op == "layernorm" else {})}
    np.testing.assert_allclose(_run(FAST, op, inputs, {}), _run(REFERENCE, op, inputs, {}),
                               **TIGHT)


def test_small_blocks_cover_batch_and_query_tiling(monkeypatch):
    """Force the blocked loops of conv2d, linear and attention through many small blocks."""
    from optcli.kernels.fast import attention, conv, dense
    monkeypatch.setattr(conv, "_CONV_BLOCK", 50)
    monkeypatch.setattr(dense, "_LINEAR_BLOCK", 30)
    monkeypatch.setattr(attention, "_SCORE_BLOCK", 20)
    for name in ["conv-s2-p1-d2-g2", "conv-batch-blocks", "linear-many-rows", "attn-all",
                 "attn-mqa-mask", "attn-fully-masked"]:
        op, inputs, attrs, tol = CASES[name]
        np.testing.assert_allclose(_run(FAST, op, inputs, attrs),
                                   _run(REFERENCE, op, inputs, attrs), **tol)


def test_fast_kernels_keep_float32_and_do_not_touch_inputs():
    for name in ["conv-lenet1-b1", "gelu-tanh", "softmax-axis1", "attn-all", "layernorm-nobias"]:
        op, inputs, attrs, _ = CASES[name]
        before = {k: v.copy() for k, v in inputs.items() if isinstance(v, np.ndarray)}
        assert _run(FAST, op, inputs, attrs).dtype == np.float32
        for k, v in before.items():
            np.testing.assert_array_equal(inputs[k], v)


def test_float64_inputs_give_float32():
    x = np.linspace(-3, 3, 11)
    for op in ["relu", "gelu", "sigmoid", "tanh", "softmax"]:
        assert _run(FAST, op, {"x": x}, {}).dtype == np.float32
    assert _run(FAST, "add", {"a": x, "b": x}, {}).dtype == np.float32
