"""Packed low-bit `linear` kernels (kernels/quantized) against the decode-then-matmul oracle,
and the runtime's "packed" form."""

import importlib.util

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from optcli.formats import bitpack
from optcli.kernels import quantized
from optcli.kernels.quantized import PackedWeight, kernel, linear
from optcli.kernels.quantized import reference as ref
from optcli.kernels.quantized.decision import SPEEDUP, packed_is_faster
from optcli.kernels.quantized.layout import from_tensor
from optcli.runtime import Runtime
from optcli.steps.quantize import quantize_int8
from tests.conftest import make_mlp

HAS_NUMBA = importlib.util.find_spec("numba") is not None
BACKENDS = [pytest.param("numba", marks=pytest.mark.skipif(not HAS_NUMBA,
                                                           reason="numba not installed")),
            "numpy"]


def packed_arrays(rng, rows, cols, bits, group, symmetric, scale_dtype=np.float32):
    """The packed layout: unsigned codes, each row a bitpack stream padded to whole bytes,
    scale [rows, n_groups], zero_point uint8 [rows, n_groups] (None when symmetric)."""
    u = rng.integers(0, 1 << bits, (rows, cols)).astype(np.uint8)
    codes = np.stack([bitpack.pack(u[r], bits) for r in range(rows)])
    n_groups = 1 if group is None else -(-cols // group)
    scale = (0.05 + rng.random((rows, n_groups))).astype(scale_dtype)
    zp = None if symmetric else rng.integers(0, 1 << bits, (rows, n_groups)).astype(np.uint8)
    return codes, scale, zp


def oracle_bound(x, w):
    """|x| @ |W|.T: the scale of float32 rounding error a reordered sum may differ by."""
    return np.abs(x) @ np.abs(ref.decode(w)).T


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("bits", range(2, 9))
@pytest.mark.parametrize("group", [None, 32, 128, 50])
@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("shape", [(37, 301), (16, 256)])
def test_packed_linear_equals_the_reference(backend, bits, group, symmetric, shape):
    rng = np.random.default_rng(bits)
    rows, cols = shape
    w = PackedWeight.from_arrays(*packed_arrays(rng, rows, cols, bits, group, symmetric),
                                 bits, group, cols)
    bias = rng.standard_normal(rows).astype(np.float32)
    for batch in (1, 3, 64):
        x = rng.standard_normal((batch, cols)).astype(np.float32)
        want = ref.linear(x, w, bias)
        got = linear(x, w, bias, backend)
        assert got.shape == want.shape and got.dtype == np.float32
        assert np.all(np.abs(got - want) <= 1e-5 * oracle_bound(x, w) + 1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("bits", range(2, 9))
def test_integer_products_are_exact(backend, bits):
    """Integer inputs, unit scales: every sum is an integer below 2^24, so float32 holds it
    exactly in any order and the kernels must equal an int64 reference bit for bit."""
    rng = np.random.default_rng(10 + bits)
    rows, cols = 29, 203
    codes, _, zp = packed_arrays(rng, rows, cols, bits, 64, symmetric=False)
    w = PackedWeight.from_arrays(codes, np.ones((rows, 4), np.float32), zp, bits, 64, cols)
    x = rng.integers(-8, 9, (5, cols))
    u = np.stack([bitpack.unpack(codes[r], bits, cols) for r in range(rows)]).astype(np.int64)
    want = x @ (u - np.repeat(zp.astype(np.int64), 64, axis=1)[:, :cols]).T
    got = linear(x.astype(np.float32), w, None, backend)
    np.testing.assert_array_equal(got, want.astype(np.float32))
    np.testing.assert_array_equal(ref.unpack_codes(w), u)


@pytest.mark.parametrize("group", [64, None])
def test_three_bit_units_at_batch_one_are_exact(group):
    """3-bit rows of whole 8-code units take jit's unit kernel at batch 1 (and jit_any's
    above): integer inputs and unit scales make every sum exact, so both equal int64."""
    rng = np.random.default_rng(3)
    rows, cols = 40, 256
    codes, _, zp = packed_arrays(rng, rows, cols, 3, group, symmetric=False)
    n_groups = zp.shape[1]
    w = PackedWeight.from_arrays(codes, np.ones((rows, n_groups), np.float32), zp, 3, group,
                                 cols)
    u = np.stack([bitpack.unpack(codes[r], 3, cols) for r in range(rows)]).astype(np.int64)
    zfull = np.repeat(zp.astype(np.int64), cols // n_groups, axis=1)
    for batch in (1, 3):
        x = rng.integers(-8, 9, (batch, cols))
        want = (x @ (u - zfull).T).astype(np.float32)
        for backend in ("numba", "numpy") if HAS_NUMBA else ("numpy",):
            np.testing.assert_array_equal(linear(x.astype(np.float32), w, None, backend), want)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("axis", [0, None])
@pytest.mark.parametrize("symmetric", [True, False])
def test_int8_tensors_run_from_their_codes(backend, axis, symmetric):
    rng = np.random.default_rng(4)
    t = quantize_int8(rng.standard_normal((45, 70)).astype(np.float32), axis, symmetric)
    w = from_tensor(t)
    assert w.codes is t.codes or np.shares_memory(w.codes, t.codes)       # no copy
    np.testing.assert_array_equal(ref.decode(w), t.decode())
    x = rng.standard_normal((3, 70)).astype(np.float32)
    np.testing.assert_allclose(linear(x, w, None, backend), x @ t.decode().T,
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("batch", [1, kernel.GEMV_MAX_BATCH + 1])
def test_large_layers_in_threads_equal_the_reference(backend, threads, batch):
    rng = np.random.default_rng(5)
    rows, cols = 600, 512                             # above PARALLEL_MIN: threads are used
    w = PackedWeight.from_arrays(*packed_arrays(rng, rows, cols, 4, 128, False), 4, 128, cols)
    x = rng.standard_normal((batch, cols)).astype(np.float32)
    with threadpool_limits(threads, user_api="blas"):
        got = linear(x, w, None, backend)
    assert np.all(np.abs(got - ref.linear(x, w)) <= 1e-5 * oracle_bound(x, w) + 1e-6)


def test_float16_scales_and_leading_dims():
    rng = np.random.default_rng(6)
    codes, scale, zp = packed_arrays(rng, 12, 40, 4, 16, False, np.float16)
    w = PackedWeight.from_arrays(codes, scale, zp, 4, 16, 40)
    assert w.scale.dtype == np.float32
    x = rng.standard_normal((2, 3, 40)).astype(np.float32)
    got = linear(x, w, None, "numpy")
    np.testing.assert_allclose(got, ref.linear(x, w), rtol=1e-5, atol=1e-5)
    assert got.shape == (2, 3, 12)


def test_bad_layouts_are_refused():
    codes = np.zeros((4, 10), np.uint8)
    with pytest.raises(ValueError, match="do not hold"):
        PackedWeight.from_arrays(codes, np.ones((4, 1), np.float32), None, 4, None, 21)
    with pytest.raises(ValueError, match="does not fit"):
        PackedWeight.from_arrays(codes, np.ones((4, 2), np.float32), None, 4, 8, 20)
    with pytest.raises(ValueError, match="backend"):
        linear(np.zeros((1, 20), np.float32), PackedWeight.from_arrays(
            codes, np.ones((4, 1), np.float32), None, 4, None, 20), None, "cuda")


def _int8_mlp():
    from optcli.steps import STEPS
    from optcli.steps.base import StepContext
    q = STEPS["quantize"]
    return q.apply(make_mlp(sizes=(64, 300, 200, 10)), q.Config(symmetric=False),
                   StepContext())[0]


def test_compact_runtime_runs_packed_and_equals_the_reference():
    m = _int8_mlp()
    feeds = {"image": np.random.default_rng(7).standard_normal((5, 1, 8, 8)).astype("f4")}
    compact, reference = Runtime(m, weights="compact"), Runtime(m, "reference")
    np.testing.assert_allclose(compact.run(feeds)["logits"], reference.run(feeds)["logits"],
                               rtol=1e-4, atol=1e-4)
    plan = {p["tensor"]: p for p in compact.plan()}
    assert plan["fc2.weight"]["form"] == "packed"
    assert plan["fc2.weight"]["resident_bytes"] == m.tensors["fc2.weight"].nbytes
    assert compact.resident_bytes() < Runtime(m, "reference").resident_bytes() / 3


def test_auto_runs_packed_only_where_measured_faster(monkeypatch):
    m = _int8_mlp()
    assert not packed_is_faster(300, 64, 8, "numba")         # smaller than anything measured
    monkeypatch.setitem(SPEEDUP, "numpy", {8: {64: {1: 1.5, 256: 1.2}}})
    monkeypatch.setattr(quantized, "default_backend", lambda: "numpy")
    forms = {p["tensor"]: p["form"] for p in Runtime(m).plan()}
    assert forms["fc1.weight"] == forms["fc2.weight"] == "packed"
    monkeypatch.setitem(SPEEDUP, "numpy", {8: {64: {1: 1.5, 256: 0.9}}})
    forms = {p["tensor"]: p["form"] for p in Runtime(m).plan()}
    assert forms["fc1.weight"] == "decoded"


@pytest.mark.parametrize("params", [
    {"bits": 4, "granularity": "group", "group_size": 16},
    {"bits": 3, "granularity": "channel", "symmetric": False},
    {"bits": 2, "granularity": "tensor"},
    {"bits": 8, "granularity": "group", "group_size": 32, "scale_dtype": "float16"},
], ids=["4bit-g16", "3bit-asym", "2bit-tensor", "8bit-g32-f16"])
def test_low_bit_models_run_packed(params):
    """The quantize step's packed layout (bits 2..8, groups), read through QuantizedTensor."""
    from optcli.steps import STEPS
    from optcli.steps.base import StepContext
    q = STEPS["quantize"]
    try:
        config = q.Config(**params)
    except TypeError:
        pytest.skip("the quantize step has no low-bit parameters yet")
    m = q.apply(make_mlp(sizes=(64, 300, 200, 10)), config, StepContext())[0]
    feeds = {"image": np.random.default_rng(8).standard_normal((4, 1, 8, 8)).astype("f4")}
    compact = Runtime(m, weights="compact")
    np.testing.assert_allclose(compact.run(feeds)["logits"],
                               Runtime(m, "reference").run(feeds)["logits"],
                               rtol=1e-4, atol=1e-4)
    plan = {p["tensor"]: p for p in compact.plan()}
    assert plan["fc2.weight"]["form"] == "packed"
    resident = plan["fc2.weight"]["resident_bytes"]          # float16 scales widen to float32
    assert resident <= 2 * m.tensors["fc2.weight"].nbytes and resident < 300 * 200 * 4 / 3


def test_without_numba_the_runtime_runs_packed_in_numpy():
    """numba is optional: with it blocked, compact still runs packed, through NumPy tiles."""
    import subprocess
    import sys
    code = (
        "import sys; sys.modules['numba'] = None\n"
        "import numpy as np\n"
        "from optcli.kernels.quantized import default_backend\n"
        "from optcli.runtime import Runtime\n"
        "from optcli.steps import STEPS\n"
        "from optcli.steps.base import StepContext\n"
        "from tests.conftest import make_mlp\n"
        "q = STEPS['quantize']\n"
        "m = q.apply(make_mlp(sizes=(64, 300, 200, 10)), q.Config(), StepContext())[0]\n"
        "x = {'image': np.ones((3, 1, 8, 8), np.float32)}\n"
        "rt = Runtime(m, weights='compact')\n"
        "assert default_backend() == 'numpy' and 'numba' not in [k for k, v in "
        "sys.modules.items() if v is not None]\n"
        "assert {p['form'] for p in rt.plan()} == {'dense', 'packed'}\n"
        "np.testing.assert_allclose(rt.run(x)['logits'], Runtime(m, 'reference').run(x)"
        "['logits'], rtol=1e-4, atol=1e-4)\n")
    root = __import__("pathlib").Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-c", code], cwd=root, check=True)


@pytest.mark.parametrize("bits,group,symmetric", [(8, None, True), (4, 16, False),
                                                  (3, None, False), (2, 32, True)])
def test_packed_embedding_gathers_the_decoded_rows(bits, group, symmetric):
    rng = np.random.default_rng(bits)
    vocab, d = 50, 64
    if bits == 8:
        t = quantize_int8(rng.standard_normal((vocab, d)).astype(np.float32), 0, symmetric)
        w = from_tensor(t)
    else:
        w = PackedWeight.from_arrays(*packed_arrays(rng, vocab, d, bits, group, symmetric),
                                     bits, group, d)
    table = ref.decode(w)
    ids = rng.integers(0, vocab, (3, 7))
    got = quantized.embedding_packed(ids, w)
    assert got.dtype == np.float32 and got.shape == (3, 7, d)
    np.testing.assert_array_equal(got, table[ids])
    with pytest.raises(ValueError, match="embedding"):
        quantized.embedding_packed(np.array([[vocab]]), w)


def test_quantized_tables_run_packed_under_both_policies():
    from optcli.steps import STEPS
    from optcli.steps.base import StepContext
    from tests.conftest import make_lm
    q = STEPS["quantize"]
    m = q.apply(make_lm(vocab=300, d=32), q.Config(bits=4, granularity="group", group_size=16,
                                                   embeddings=True), StepContext())[0]
    ids = {"ids": np.random.default_rng(3).integers(0, 300, (2, 9))}
    want = Runtime(m, "reference").run(ids)["logits"]
    for policy in ("auto", "compact"):
        rt = Runtime(m, weights=policy)
        plan = {p["tensor"]: p for p in rt.plan()}
        assert plan["tok"]["form"] == plan["pos"]["form"] == "packed"
        resident = plan["tok"]["resident_bytes"]           # float16 scales widen to float32
        assert resident <= 2 * m.tensors["tok"].nbytes and resident < 300 * 32 * 4 / 4
        np.testing.assert_allclose(rt.run(ids)["logits"], want, rtol=1e-4, atol=1e-4)
