"""The codebook encoding and the sparse codebook variant: round trips, malformed input refused."""

import numpy as np
import pytest

from optcli.errors import ModelFormatError
from optcli.formats import CodebookTensor, SparseTensor
from optcli.formats.bitpack import pack
from optcli.kernels import sparse as sparse_kernels


def _reload(t):
    return type(t).from_stored("w", t.shape, "float32", t.arrays(), t.params())


def _scalar(shape=(6, 10), k=8, seed=0):
    rng = np.random.default_rng(seed)
    book = np.sort(rng.standard_normal(k)).astype(np.float32)
    index = rng.integers(0, k, int(np.prod(shape)))
    return CodebookTensor.from_index(shape, index, book), book[index].reshape(shape)


@pytest.mark.parametrize("k", [1, 2, 5, 32, 256])
def test_scalar_round_trip(k):
    t, w = _scalar(k=k)
    assert t.bits == max(1, int(np.ceil(np.log2(k))))
    np.testing.assert_array_equal(t.decode(), w)
    np.testing.assert_array_equal(_reload(t).decode(), w)
    assert t.nbytes == 4 * k + (60 * t.bits + 7) // 8


@pytest.mark.parametrize("unit,shape,d", [("row", (5, 12), 12), ("filter", (4, 3, 2, 2), 12),
                                          ("kernel", (4, 3, 3, 3), 9)])
def test_vector_units_round_trip(unit, shape, d):
    rng = np.random.default_rng(1)
    book = rng.standard_normal((3, d)).astype(np.float32)
    count = int(np.prod(shape)) // d
    index = rng.integers(0, 3, count)
    t = CodebookTensor.from_index(shape, index, book, unit=unit)
    np.testing.assert_array_equal(_reload(t).decode(), book[index].reshape(shape))
    assert t.params() == {"bits": 2, "count": count, "unit": unit}


def _broken(t, **changes):
    arrays, params = dict(t.arrays()), dict(t.params())
    for key, value in changes.items():
        (arrays if key in arrays else params)[key] = value
    return CodebookTensor.from_stored("w", t.shape, "float32", arrays, params)


def test_malformed_codebook_tensors_are_refused():
    t, _ = _scalar(k=5)                       # 3 bits, indices 0..4
    bad = {
        "codebook": t.codebook.astype(np.float64),
        "codes": t.codes[:-1],
        "bits": 0, "count": 59, "unit": "filter",
    }
    for key, value in bad.items():
        with pytest.raises(ModelFormatError, match="tensor 'w'"):
            _broken(t, **{key: value})
    with pytest.raises(ModelFormatError, match="NaN/Inf"):
        _broken(t, codebook=np.array([0, 1, np.nan, 2, 3], np.float32))
    with pytest.raises(ModelFormatError, match="out of range"):
        _broken(t, codes=pack(np.full(60, 7), 3))
    with pytest.raises(ModelFormatError, match="codebook shape"):
        _broken(t, codebook=np.zeros(9, np.float32))       # more entries than 2**3


def _sparse_codebook(layout):
    rng = np.random.default_rng(2)
    w = rng.standard_normal((20, 30)).astype(np.float32)
    w[rng.random(w.shape) < 0.7] = 0
    s = SparseTensor.from_dense(w, layout)
    book = np.array([-1.5, -0.5, 0.5, 1.5], np.float32)
    index = np.searchsorted([-1.0, 0.0, 1.0], s.values).astype(np.uint8)
    return s.with_values(index, None, book), np.where(w != 0, book[np.searchsorted(
        [-1.0, 0.0, 1.0], w)], 0)


@pytest.mark.parametrize("layout", ["csr", "gaps", "bitmask"])
def test_sparse_codebook_values_round_trip_and_run_as_csr(layout):
    t, w = _sparse_codebook(layout)
    back = _reload(t)
    np.testing.assert_array_equal(back.decode(), w)
    np.testing.assert_array_equal(back.coords()[0], np.nonzero(w)[0])
    np.testing.assert_array_equal(back.float_values(), w[w != 0])
    assert back.nonzeros == np.count_nonzero(w) and "codebook4" in back.describe()
    if sparse_kernels.available():
        x = np.random.default_rng(0).standard_normal((3, 30)).astype(np.float32)
        y = sparse_kernels.linear_csr(x, sparse_kernels.to_csr(back))
        np.testing.assert_allclose(y, x @ w.T, rtol=1e-5, atol=1e-5)


def test_sparse_codebook_malformed_is_refused():
    t, _ = _sparse_codebook("csr")
    arrays = dict(t.arrays())
    for change, match in [({"codebook": None}, "missing array 'codebook'"),
                          ({"codebook": t.codebook[:2]}, "out of range"),
                          ({"codebook": t.codebook.astype(np.float16)}, "dtype"),
                          ({"codebook": np.array([0, np.inf, 1, 2], np.float32)}, "NaN/Inf")]:
        bad = {**arrays, **change}
        bad = {k: v for k, v in bad.items() if v is not None}
        with pytest.raises(ModelFormatError, match=match):
            SparseTensor.from_stored("w", t.shape, "float32", bad, t.params())


def test_int8_sparse_variant_still_works():
    w = np.array([[0, 2, 0], [4, 0, -6]], np.float32)
    s = SparseTensor.from_dense(w, "csr")
    q = s.with_values(np.array([1, 2, -3], np.int8), np.array([2, 2], np.float32))
    np.testing.assert_array_equal(_reload(q).decode(), w)
    assert q.codebook is None and _reload(q).codebook is None
