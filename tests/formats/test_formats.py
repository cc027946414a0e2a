"""Storage formats: exact round trips, byte sizes, and rejection of malformed stored arrays."""

import numpy as np
import pytest

from optcli.errors import ModelFormatError
from optcli.formats import ENCODINGS, DenseTensor, QuantizedTensor, SparseTensor
from optcli.steps.quantize import quantize_int8


def _sparse_matrix(seed=0, shape=(30, 50), density=0.1):
    rng = np.random.default_rng(seed)
    w = rng.standard_normal(shape).astype(np.float32)
    w[rng.random(shape) > density] = 0
    return w


def _roundtrip(t):
    cls = ENCODINGS[t.encoding]
    return cls.from_stored("t", t.shape, t.dtype, t.arrays(), t.params())


@pytest.mark.parametrize("layout", ["csr", "gaps", "bitmask"])
@pytest.mark.parametrize("shape", [(30, 50), (8, 3, 5, 5), (7,), (300, 1)])
def test_sparse_is_exact_and_roundtrips(layout, shape):
    w = _sparse_matrix(shape=shape)
    s = SparseTensor.from_dense(w, layout)
    assert s.layout == layout
    np.testing.assert_array_equal(s.decode(), w)
    np.testing.assert_array_equal(_roundtrip(s).decode(), w)
    assert s.nonzeros == np.count_nonzero(w)


def test_sparse_auto_picks_the_smaller_layout():
    for density in (0.02, 0.1, 0.3, 0.6):
        w = _sparse_matrix(shape=(100, 300), density=density)
        sizes = {lay: SparseTensor.from_dense(w, lay).nbytes for lay in ("csr", "gaps", "bitmask")}
        assert SparseTensor.from_dense(w).nbytes == min(sizes.values())


def test_sparse_uses_narrow_index_types_and_is_about_10x_smaller_at_90_percent():
    w = _sparse_matrix(shape=(300, 784), density=0.1)
    s = SparseTensor.from_dense(w, "csr")
    assert s.indices.dtype == np.uint16 and s.indptr.dtype == np.uint16
    auto = SparseTensor.from_dense(w)
    assert auto.layout == "gaps"
    assert w.nbytes / auto.nbytes > 8.0   # 4 B value + ~0.6 B of 4-bit gaps per nonzero


@pytest.mark.parametrize("axis", [0, None])
@pytest.mark.parametrize("symmetric", [True, False])
def test_quantized_roundtrip_and_error_bound(axis, symmetric):
    rng = np.random.default_rng(3)
    w = (rng.standard_normal((16, 40)) * rng.uniform(0.01, 3, (16, 1))).astype(np.float32)
    q = quantize_int8(w, axis, symmetric)
    back = _roundtrip(q)
    np.testing.assert_array_equal(back.decode(), q.decode())
    scale = q.scale.reshape(-1, 1) if axis == 0 else q.scale[0]
    assert np.all(np.abs(q.decode() - w) <= scale / 2 + 1e-6 * np.abs(w).max())
    assert q.nbytes < w.nbytes / 3.5


def test_dense_float16_and_int_tables():
    h = DenseTensor(np.arange(6, dtype=np.float16).reshape(2, 3))
    assert h.describe() == "dense f16" and h.nbytes == 12
    assert _roundtrip(h).decode().dtype == np.float32


@pytest.mark.parametrize("mutate, message", [
    (lambda a: a.update(values=a["values"].astype(np.float64)), "dtype float64"),
    (lambda a: a.update(indptr=a["indptr"][:-1]), "indptr"),
    (lambda a: a.pop("indices"), "missing array 'indices'"),
    (lambda a: a.update(values=np.full_like(a["values"], np.nan)), "NaN"),
])
def test_sparse_rejects_malformed_arrays(mutate, message):
    s = SparseTensor.from_dense(_sparse_matrix(), "csr")
    arrays = dict(s.arrays())
    mutate(arrays)
    with pytest.raises(ModelFormatError, match=message):
        SparseTensor.from_stored("w", s.shape, "float32", arrays, s.params())


def test_csr_rejects_out_of_range_columns():
    s = SparseTensor.from_dense(_sparse_matrix(), "csr")
    arrays = dict(s.arrays(), indices=s.indices.copy())
    arrays["indices"][0] = 55   # the matrix has 50 columns
    with pytest.raises(ModelFormatError, match="column index out of range"):
        SparseTensor.from_stored("w", s.shape, "float32", arrays, s.params())


def test_quantized_rejects_wrong_scale_shape_and_bits():
    q = quantize_int8(np.ones((4, 5), np.float32), 0, True)
    with pytest.raises(ModelFormatError, match="scale"):
        QuantizedTensor.from_stored("w", (4, 5), "float32",
                                    {"codes": q.codes, "scale": q.scale[:2]}, q.params())
    with pytest.raises(ModelFormatError, match="bits"):
        QuantizedTensor.from_stored("w", (4, 5), "float32", q.arrays(), {**q.params(), "bits": 9})
