"""W8A8 kernels: the integer sums equal an int64 NumPy reference exactly, both tiers agree,
and the results approximate the float layers."""

import numpy as np
import pytest

from optcli.formats import QuantizedTensor
from optcli.kernels import w8a8_ort
from optcli.kernels.fast import w8a8 as fast
from optcli.kernels.reference import w8a8 as ref
from optcli.kernels.w8a8 import CHUNK_MAX, Int8Codes
from optcli.steps.quantize import quantize_int8


def _codes(rng, shape, lo=-128, hi=127):
    return rng.integers(lo, hi + 1, shape).astype(np.float32)


@pytest.mark.parametrize("k", [1, 2, 7, 300, 1023, 1024, 1025, 2049, 5000])
def test_int_matmul_equals_int64_exactly(k):
    rng = np.random.default_rng(k)
    q = _codes(rng, (5, k))
    q[0] = -128                                                  # extreme rows: the bound
    w = _codes(rng, (k, 9), -255, 255)                           # w' = codes - zp: [-255, 255]
    w[:, 0] = -255
    chunk = Int8Codes(QuantizedTensor(np.zeros((1, 1), np.int8), np.ones(1, np.float32),
                                      None, None)).chunk()
    wmax_chunk = max(1, min(CHUNK_MAX, (1 << 24) // (128 * 255)))
    got = fast.int_matmul(q, w, wmax_chunk)
    want = q.astype(np.int64) @ w.astype(np.int64)
    assert np.array_equal(got.astype(np.int64), want)
    assert chunk == CHUNK_MAX
    if k > wmax_chunk:
        assert got.dtype == np.float64


def test_unchunked_float32_would_lose_bits():
    """The reason for chunks: one 5000-long float32 sum of int8 products rounds."""
    q = np.full((1, 5000), 127, np.float32)
    w = np.full((5000, 1), 127, np.float32)
    w[::2] = 126
    want = q.astype(np.int64) @ w.astype(np.int64)
    naive = np.float32(0)
    for a, b in zip(q[0], w[:, 0]):
        naive = np.float32(naive + a * b)
    assert int(naive) != int(want[0, 0])
    assert int(fast.int_matmul(q, w, 1024)[0, 0]) == int(want[0, 0])


@pytest.mark.parametrize("cin,k,groups,stride,dilation", [
    (3, 3, 1, 1, 1), (130, 3, 1, 1, 1), (8, 5, 2, 2, 1), (300, 3, 3, 1, 2), (2, 1, 1, 1, 1)])
def test_int_conv_equals_int64_reference_exactly(cin, k, groups, stride, dilation):
    rng = np.random.default_rng(cin)
    x = _codes(rng, (2, cin, 9, 8))
    w = _codes(rng, (6, cin // groups, k, k), -255, 255)
    want = ref.int_conv2d(x.astype(np.int64), w.astype(np.int64), stride, 0, dilation, groups)
    got = fast.int_conv(x, w, stride, dilation, groups, 513)
    assert np.array_equal(got.astype(np.int64), want)


def test_reference_int_conv_matches_im2col_einsum():
    rng = np.random.default_rng(0)
    x, w = _codes(rng, (2, 3, 6, 6)).astype(np.int64), _codes(rng, (4, 3, 3, 3)).astype(np.int64)
    win = np.lib.stride_tricks.sliding_window_view(x, (3, 3), axis=(2, 3))  # [B, C, 4, 4, 3, 3]
    want = np.einsum("bchwkl,ockl->bohw", win, w)
    assert np.array_equal(ref.int_conv2d(x, w, 1, 0, 1, 1), want)


def _layer(rng, shape, symmetric, axis=0):
    w = rng.standard_normal(shape).astype(np.float32)
    return w, Int8Codes(quantize_int8(w, axis=axis, symmetric=symmetric))


MODES = [("static", 0.03, 0), ("static", 0.025, -9), ("dynamic", None, 0)]


@pytest.mark.parametrize("k", [5, 1024, 1500])
@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("axis", [0, None])
def test_linear_tiers_agree_and_match_int64_formula(k, symmetric, axis):
    rng = np.random.default_rng(k)
    w, c = _layer(rng, (7, k), symmetric, axis)
    t = quantize_int8(w, axis=axis, symmetric=symmetric)
    x = rng.standard_normal((2, 3, k)).astype(np.float32)
    bias = rng.standard_normal(7).astype(np.float32)
    for mode, s, zp in MODES:
        a = ref.linear_w8a8(x, c, bias, mode, s, zp)
        b = fast.linear_w8a8(x, c, bias, mode, s, zp)
        np.testing.assert_allclose(b, a, rtol=2e-6, atol=2e-6 * np.abs(a).max())
        # an independent int64 formula: codes of x, codes of w with their zero points
        q, sx = ref.quantize_activation(x.reshape(-1, k), mode, s, zp)
        wz = t.codes.astype(np.int64) - (0 if t.zero_point is None else
                                        t.zero_point.astype(np.int64).reshape(-1, 1))
        acc = (q.astype(np.int64) - zp) @ wz.T
        want = acc * sx.astype(np.float64) * np.broadcast_to(t.scale, (7,)) + bias
        np.testing.assert_allclose(a.reshape(-1, 7), want, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("cin,groups,padding", [(3, 1, 1), (200, 1, 0), (8, 2, 2)])
def test_conv_tiers_agree_and_approximate_float(symmetric, cin, groups, padding):
    from optcli.kernels.reference.dense import conv2d
    rng = np.random.default_rng(cin)
    w, c = _layer(rng, (6, cin // groups, 3, 3), symmetric)
    x = rng.standard_normal((2, cin, 7, 7)).astype(np.float32)
    bias = rng.standard_normal(6).astype(np.float32)
    yf = conv2d(x, w, bias, 1, padding, 1, groups)
    for mode, s, zp in MODES:
        s = None if s is None else float(np.abs(x).max() / 127)
        a = ref.conv2d_w8a8(x, c, bias, 1, padding, 1, groups, mode, s, zp)
        b = fast.conv2d_w8a8(x, c, bias, 1, padding, 1, groups, mode, s, zp)
        np.testing.assert_allclose(b, a, rtol=2e-6, atol=2e-6 * np.abs(a).max())
        assert np.abs(a - yf).max() < 0.05 * np.abs(yf).max()


def test_quantize_activation_spec():
    x = np.array([[0.5, -1.0, 2.0], [0.0, 0.0, 0.0]], np.float32)
    q, s = ref.quantize_activation(x, "static", 0.01, -100)
    assert q.tolist() == [[-50, -128, 100], [-100, -100, -100]]           # clipped at -128
    q, s = ref.quantize_activation(x, "dynamic", None, 0)
    assert q[0].tolist() == [32, -64, 127] and s[1, 0] == 1 and not q[1].any()


needs_ort = pytest.mark.skipif(not w8a8_ort.available(),
                               reason="onnx / onnxruntime not installed")


@needs_ort
@pytest.mark.parametrize("k,axis,asym,mode", [
    (37, 0, True, "static"), (300, None, False, "dynamic"), (1025, 0, True, "dynamic"),
    (2049, 0, False, "static"), (1500, None, True, "static")])
def test_onnxruntime_int8_sums_equal_int64_and_the_numpy_tier(k, axis, asym, mode):
    """MatMulInteger's int32 sums equal the int64 reference bit for bit, and a layer on it
    gives the NumPy tier's outputs exactly (same sums, same float32/float64 scaling)."""
    rng = np.random.default_rng(k)
    t = quantize_int8(rng.standard_normal((11, k)).astype(np.float32), axis, not asym)
    ort_w, np_w = w8a8_ort.OrtInt8Linear(t, 2), Int8Codes(t)
    x = (3 * rng.standard_normal((6, k))).astype(np.float32)
    x[0, :] = -50.0                                          # clipped codes: -128 and the zp
    zp = -7 if mode == "static" else 0
    q, _ = ref.quantize_activation(x, mode, 0.05, zp)
    want = (q.astype(np.int64) - zp) @ np_w.w.astype(np.int64).T
    assert np.array_equal(ort_w.int_matmul(q, zp).astype(np.int64), want)
    bias = rng.standard_normal(11).astype(np.float32)
    kw = dict(input_quant=mode, input_scale=0.05, input_zero_point=zp)
    np.testing.assert_array_equal(fast.linear_w8a8(x, ort_w, bias, **kw),
                                  fast.linear_w8a8(x, np_w, bias, **kw))
    assert ort_w.nbytes < np_w.nbytes / 3                   # int8, not float32, resident


@needs_ort
def test_the_runtime_runs_w8a8_linears_on_onnxruntime_when_installed(monkeypatch):
    from optcli.runtime import Runtime
    from optcli.steps import STEPS
    from optcli.steps.base import StepContext
    from tests.conftest import make_mlp
    q, a = STEPS["quantize"], STEPS["activations"]
    m = q.apply(make_mlp(sizes=(64, 300, 200, 10)), q.Config(symmetric=False), StepContext())[0]
    m = a.apply(m, a.Config(mode="dynamic"), StepContext())[0]
    x = {"image": np.random.default_rng(1).standard_normal((7, 1, 8, 8)).astype("f4")}
    on_ort = Runtime(m)
    assert isinstance(on_ort.weights["fc1.weight"], w8a8_ort.OrtInt8Linear)
    monkeypatch.setattr(w8a8_ort, "available", lambda: False)
    on_numpy = Runtime(m)
    assert isinstance(on_numpy.weights["fc1.weight"], Int8Codes)
    np.testing.assert_array_equal(on_ort.run(x)["logits"], on_numpy.run(x)["logits"])
    assert on_ort.resident_bytes() < on_numpy.resident_bytes() / 2
