"""The reference kernels against independent known values and properties, and the fast erf
against math.erf: the oracle itself must be right."""

import math

import numpy as np
import pytest

from optcli.kernels.fast.erf import erf
from optcli.kernels.reference import REFERENCE as R
from optcli.kernels.reference.attention import rotary


def test_conv_matches_a_direct_sum_on_one_channel():
    """y[oh, ow] = sum_ij x[oh*s + i*d - p, ow*s + j*d - p] * w[i, j], zero outside x."""
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((7, 6)), rng.standard_normal((3, 2))
    s, p, d = 2, 1, 2
    y = R["conv2d"](x[None, None].astype("f4"), w[None, None].astype("f4"), None,
                    stride=s, padding=p, dilation=d, groups=1)[0, 0]
    for oh in range(y.shape[0]):
        for ow in range(y.shape[1]):
            want = sum(x[r, c] * w[i, j] for i in range(3) for j in range(2)
                       for r, c in [(oh * s + i * d - p, ow * s + j * d - p)]
                       if 0 <= r < 7 and 0 <= c < 6)
            assert y[oh, ow] == pytest.approx(want, abs=1e-5)
    assert y.shape == ((7 + 2 - 5) // 2 + 1, (6 + 2 - 3) // 2 + 1)


def test_grouped_conv_is_independent_convs():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 4, 5, 5)).astype("f4")
    w = rng.standard_normal((6, 2, 3, 3)).astype("f4")
    kw = dict(stride=1, padding=1, dilation=1)
    y = R["conv2d"](x, w, None, groups=2, **kw)
    np.testing.assert_allclose(y[:, :3], R["conv2d"](x[:, :2], w[:3], None, groups=1, **kw))
    np.testing.assert_allclose(y[:, 3:], R["conv2d"](x[:, 2:], w[3:], None, groups=1, **kw))


def test_pools_on_known_inputs():
    x = np.arange(16, dtype="f4").reshape(1, 1, 4, 4)
    np.testing.assert_array_equal(R["maxpool2d"](x, kernel=2)[0, 0], [[5, 7], [13, 15]])
    ones = np.ones((1, 1, 3, 3), "f4")
    incl = R["avgpool2d"](ones, kernel=3, stride=1, padding=1, count_include_pad=True)[0, 0]
    excl = R["avgpool2d"](ones, kernel=3, stride=1, padding=1, count_include_pad=False)[0, 0]
    assert incl[0, 0] == pytest.approx(4 / 9) and incl[1, 1] == pytest.approx(1)
    np.testing.assert_allclose(excl, 1)
    neg = -np.ones((1, 1, 2, 2), "f4")                   # -inf padding never wins a max
    np.testing.assert_array_equal(R["maxpool2d"](neg, kernel=2, stride=1, padding=1), -1)


@pytest.mark.parametrize("x, want", [(0.0, 0.0), (1.0, 0.8413447460685429),
                                     (-1.0, -0.15865525393145707), (3.0, 2.995950245952186)])
def test_gelu_exact_values(x, want):
    assert float(R["gelu"](np.array([x], "f4"))[0]) == pytest.approx(want, abs=1e-7)


def test_gelu_tanh_differs_from_exact_but_little():
    x = np.linspace(-4, 4, 81).astype("f4")
    diff = np.abs(R["gelu"](x, approximate="tanh") - R["gelu"](x, approximate="none"))
    assert 1e-5 < diff.max() < 1e-3


def test_softmax_properties():
    p = R["softmax"](np.array([[0.0, math.log(2)], [1000.0, 1000.0]], "f4"))
    np.testing.assert_allclose(p, [[1 / 3, 2 / 3], [0.5, 0.5]], rtol=1e-6)
    q = R["softmax"](np.random.default_rng(0).standard_normal((3, 4, 5)).astype("f4"), axis=1)
    np.testing.assert_allclose(q.sum(axis=1), 1, rtol=1e-6)


def test_norms_on_known_inputs():
    w = np.array([2.0, 3.0, 4.0], "f4")
    np.testing.assert_allclose(R["rmsnorm"](np.full((1, 3), -5.0, "f4"), w, eps=1e-6)[0], -w,
                               rtol=1e-6)
    y = R["layernorm"](np.array([[1.0, 2.0, 6.0]], "f4"), np.ones(3, "f4"), None, eps=0.0)
    assert abs(y.mean()) < 1e-6 and y.var() == pytest.approx(1, rel=1e-6)
    bn = R["batchnorm"](np.full((1, 2, 1, 1), 3.0, "f4"), np.array([1, 2], "f4"),
                        np.array([0, 1], "f4"), np.array([1, 1], "f4"), np.array([4, 4], "f4"),
                        eps=0.0)
    np.testing.assert_allclose(bn.ravel(), [1.0, 3.0])


def test_reshape_flatten_follow_onnx():
    x = np.zeros((2, 3, 4), "f4")
    assert R["reshape"](x, shape=[0, -1]).shape == (2, 12)
    assert R["reshape"](x, shape=[-1, 0, 2]).shape == (4, 3, 2)
    assert R["flatten"](x, axis=0).shape == (1, 24)
    assert R["flatten"](x, axis=3).shape == (24, 1)


def test_attention_known_cases():
    rng = np.random.default_rng(0)
    v = rng.standard_normal((1, 4, 6)).astype("f4")
    q, k = rng.standard_normal((1, 4, 6)).astype("f4"), rng.standard_normal((1, 4, 6)).astype("f4")
    causal = R["attention"](q, k, v, num_heads=2, causal=True)
    np.testing.assert_allclose(causal[0, 0], v[0, 0], rtol=1e-6)       # row 0 sees only key 0
    uniform = R["attention"](np.zeros_like(q), k, v, num_heads=2)
    np.testing.assert_allclose(uniform[0], np.broadcast_to(v[0].mean(0), (4, 6)), rtol=1e-5)
    masked = R["attention"](q, k, v, np.array([[1, 0, 0, 0]]), num_heads=2)
    np.testing.assert_allclose(masked[0], np.broadcast_to(v[0, 0], (4, 6)), rtol=1e-6)
    nothing = R["attention"](q, k, v, np.zeros((1, 4)), num_heads=2)
    np.testing.assert_array_equal(nothing, 0)


def test_rotary_styles_are_the_same_rotation_on_permuted_features():
    x = np.random.default_rng(0).standard_normal((5, 8))
    perm = np.r_[0:8:2, 1:8:2]                 # interleaved pair (2i, 2i+1) -> (i, i + d/2)
    half = rotary(x[:, perm], "half", 100.0)
    inter = rotary(x, "interleaved", 100.0)
    np.testing.assert_allclose(half, inter[:, perm], rtol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(inter, axis=1), np.linalg.norm(x, axis=1))
    np.testing.assert_array_equal(inter[0], x[0])          # position 0 is not rotated
    angle = 1 * 100.0 ** (-2 * 1 / 8)                       # pair 1 at position 1
    c, s = math.cos(angle), math.sin(angle)
    assert inter[1, 2] == pytest.approx(x[1, 2] * c - x[1, 3] * s)


def test_sequence_ops_on_known_inputs():
    w = np.arange(12, dtype="f4").reshape(4, 3)
    np.testing.assert_array_equal(R["embedding"](np.array([[3, 0]]), w)[0], w[[3, 0]])
    pos = R["positions"](np.zeros((2, 3), np.int64), offset=5)
    assert pos.dtype == np.int64 and pos.tolist() == [[5, 6, 7]]
    x = np.arange(12, dtype="f4").reshape(1, 4, 3)
    np.testing.assert_allclose(R["meanpool"](x, np.array([[1, 1, 0, 0]]))[0], [1.5, 2.5, 3.5])
    np.testing.assert_array_equal(R["meanpool"](x, np.zeros((1, 4)))[0], 0)
    np.testing.assert_allclose(R["l2normalize"](np.array([[3.0, 4.0], [0, 0]], "f4")),
                               [[0.6, 0.8], [0, 0]])


def test_fast_erf_is_accurate_on_float32():
    grid = np.concatenate([np.linspace(-6, 6, 400_001), [-np.inf, np.inf, 0.0]]).astype("f4")
    want = np.array([math.erf(v) for v in grid.astype(np.float64)])
    got = erf(grid)
    assert got.dtype == np.float32
    assert np.abs(got - want).max() <= 2e-7
