"""Fused fast kernels against the unfused reference chain they replace: conv2d -> relu
(-> maxpool2d), linear -> relu, linear -> gelu, over batch 1, blocked batches (with BLAS on one
thread or several), odd pool geometry, no bias; plus their errors and their fusion table."""

import numpy as np
import pytest

from optcli.kernels.fast import conv, fused
from optcli.kernels.reference import REFERENCE
from optcli.ops import OPS
from tests.kernels.test_kernels import SUMS, TIGHT, rnd


def _ref(op, **inputs):
    """One reference op with its attributes resolved to their defaults."""
    attrs = {k: inputs.pop(k) for k in list(inputs) if k in OPS[op].attrs}
    return REFERENCE[op](**inputs, **OPS[op].resolve_attrs(attrs))


CONVS = {   # name: (x shape, weight shape, conv attrs, pool attrs)
    "lenet1-b1": ((1, 1, 28, 28), (6, 1, 5, 5), {"padding": 2}, {"kernel": 2}),
    "lenet2-b3": ((3, 6, 14, 14), (16, 6, 5, 5), {}, {"kernel": 2}),
    "blocks-b40": ((40, 2, 10, 10), (3, 2, 3, 3), {"padding": 1}, {"kernel": 2}),
    "strided-groups": ((2, 4, 11, 9), (6, 2, 3, 3), {"stride": 2, "padding": 1,
                                                      "dilation": 2, "groups": 2},
                       {"kernel": 2, "stride": 1}),
    "odd-floor": ((2, 3, 9, 11), (4, 3, 3, 3), {}, {"kernel": 2}),
    "pool3-s2-p1": ((2, 2, 9, 7), (5, 2, 3, 3), {"padding": 1},
                    {"kernel": 3, "stride": 2, "padding": 1}),
}


@pytest.mark.parametrize("layout", ["nchw", "channel-major"])
@pytest.mark.parametrize("single", [True, False], ids=["blas1", "blasN"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("name", list(CONVS))
def test_conv_relu_maxpool_equals_the_reference_chain(name, bias, single, layout, monkeypatch):
    """Also on channel-major input, the NCHW view a fast conv returns (LeNet-5's second conv)."""
    monkeypatch.setattr(conv, "single_threaded", lambda: single)
    xs, ws, attrs, pool = CONVS[name]
    x, w, b = rnd(0, *xs), rnd(1, *ws), rnd(2, ws[0]) if bias else None
    if layout == "channel-major":
        x = np.ascontiguousarray(x.transpose(1, 0, 2, 3)).transpose(1, 0, 2, 3)
    h = _ref("relu", x=_ref("conv2d", x=x, weight=w, bias=b, **attrs))
    want = _ref("maxpool2d", x=h, **pool)
    np.testing.assert_allclose(fused.conv2d_relu(x, w, b, **attrs), h, **SUMS)
    got = fused.conv2d_relu_maxpool2d(x, w, b, **attrs,
                                      **{f"pool_{k}": v for k, v in pool.items()})
    assert got.shape == want.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, want, **SUMS)


@pytest.mark.parametrize("batch", [1, 9])
def test_pool_after_relu_is_bit_identical_to_the_unfused_fast_chain(batch, monkeypatch):
    """Bias and relu after the pool commute exactly with max: not just close, equal."""
    from optcli.kernels.fast import FAST
    monkeypatch.setattr(conv, "_CONV_BLOCK", 500)              # many blocks
    x, w, b = rnd(3, batch, 2, 12, 12), rnd(4, 5, 2, 3, 3), rnd(5, 5)
    unfused = FAST["maxpool2d"](FAST["relu"](FAST["conv2d"](x, w, b, 1, 1, 1, 1)), 2)
    np.testing.assert_array_equal(fused.conv2d_relu_maxpool2d(x, w, b, padding=1), unfused)


@pytest.mark.parametrize("x, w", [(rnd(0, 1, 784), rnd(1, 300, 784, scale=0.05)),
                                  (rnd(2, 2, 7, 33), rnd(3, 5, 33)),
                                  (rnd(4, 700, 24), rnd(5, 400, 24))],
                         ids=["b1", "3d", "many-rows"])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
def test_linear_relu_and_gelu_equal_the_reference_chain(x, w, bias):
    b = rnd(6, w.shape[0]) if bias else None
    y = _ref("linear", x=x, weight=w, bias=b)
    np.testing.assert_allclose(fused.linear_relu(x, w, b), _ref("relu", x=y), **SUMS)
    for approximate in ("none", "tanh"):
        got = fused.linear_gelu(x, w, b, approximate)
        assert got.shape == y.shape and got.dtype == np.float32
        np.testing.assert_allclose(got, _ref("gelu", x=y, approximate=approximate), **SUMS)


def test_linear_gelu_over_many_row_blocks(monkeypatch):
    from optcli.kernels.fast import activations
    monkeypatch.setattr(activations, "BLOCK", 64)              # 64 // 40 = 1 row per block
    x, w, b = rnd(7, 5, 16), rnd(8, 40, 16), rnd(9, 40)
    want = _ref("gelu", x=_ref("linear", x=x, weight=w, bias=b))
    np.testing.assert_allclose(fused.linear_gelu(x, w, b), want, **SUMS)


@pytest.mark.parametrize("fn, inputs, attrs, message", [
    (fused.linear_relu, (rnd(0, 2, 783), rnd(1, 10, 784)), {}, "linear: x has 783 features"),
    (fused.linear_gelu, (rnd(0, 2, 8), rnd(1, 10, 8), rnd(2, 9)), {}, "linear: bias shape"),
    (fused.conv2d_relu, (rnd(0, 1, 3, 8, 8), rnd(1, 4, 2, 3, 3)), {}, "x has 3 channels"),
    (fused.conv2d_relu_maxpool2d, (rnd(0, 1, 1, 8, 8), rnd(1, 2, 1, 3, 3)),
     {"pool_kernel": 2, "pool_padding": 2}, "maxpool2d: padding .* at most half"),
])
def test_fused_kernels_raise_their_parts_errors(fn, inputs, attrs, message):
    with pytest.raises(ValueError, match=message):
        fn(*inputs, **attrs)


def test_every_fusion_chains_real_ops_and_maps_their_names():
    """Every renamed input and attribute of a chain is a parameter of its kernel."""
    for f in fused.FUSIONS:
        assert set(f.ops) <= set(OPS) and len(f.prefixes) == len(f.ops) == len(f.links) + 1
        specs = [OPS[op] for op in f.ops]
        roles = [{r: r for r in s.roles} for s in specs]
        names = set(f.inputs(roles)) | set(f.attrs([{k: a for k, a in s.attrs.items()
                                                     if not a.optional} for s in specs]))
        params = set(f.fn.__code__.co_varnames[:f.fn.__code__.co_argcount])
        assert names == params, f.ops
        assert all(link in s.roles for link, s in zip(f.links, specs[1:]))


def test_mul_add_equals_the_reference_chain():
    a, s, t = rnd(0, 2, 3, 4), rnd(1, 4), rnd(2, 3, 1)
    want = _ref("add", a=_ref("mul", a=a, b=s), b=t)
    np.testing.assert_allclose(fused.mul_add(a, s, t), want, rtol=1e-6)
    wide = rnd(3, 5, 2, 3, 4)                                  # widens the product's shape
    np.testing.assert_allclose(fused.mul_add(a, s, wide), _ref("add", a=_ref(
        "mul", a=a, b=s), b=wide), rtol=1e-6)
    with pytest.raises(ValueError, match=r"add: shapes \[2, 3, 4\] and \[5\]"):
        fused.mul_add(a, s, rnd(4, 5))


@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
def test_flatten_linear_equals_the_reference_chain(bias):
    x, w = rnd(0, 3, 2, 4, 5), rnd(1, 7, 40)
    b = rnd(2, 7) if bias else None
    y = _ref("linear", x=_ref("flatten", x=x), weight=w, bias=b)
    np.testing.assert_allclose(fused.flatten_linear(x, w, b), y, **SUMS)
    np.testing.assert_allclose(fused.flatten_linear_relu(x, w, b), _ref("relu", x=y), **SUMS)


@pytest.mark.parametrize("kernel, stride", [(1, 1), ([1, 3], [1, 2]), ([3, 1], [2, 1]),
                                            (3, 2), (2, 1)])
def test_pool_window_shapes(kernel, stride):
    """The separable pooling reduction for every mix of one- and many-tap axes."""
    from optcli.kernels.fast import FAST
    x = rnd(5, 2, 3, 9, 8)
    for op in ("maxpool2d", "avgpool2d"):
        np.testing.assert_allclose(FAST[op](x, kernel, stride),
                                   _ref(op, x=x, kernel=kernel, stride=stride), **TIGHT)
