"""Trainable forms of every stored encoding: untouched they store back bit for bit; after
updates masks, quantization grids and codebook indices still hold, and the stored tensor
decodes to exactly what the forward read."""

from __future__ import annotations

import numpy as np
import pytest

from optcli.formats import CodebookTensor, DenseTensor, SparseTensor
from optcli.quantization.grid import Spec, choose_grid, quantize, to_tensor
from optcli.steps.quantize import _quantize_sparse, quantize_int8
from optcli.training.parametrize import parametrize

rng = np.random.default_rng(0)
W = rng.standard_normal((6, 8)).astype(np.float32)
PRUNED = np.where(rng.random((6, 8)) < 0.7, 0, W).astype(np.float32)


def _sparse_codebook():
    s = SparseTensor.from_dense(PRUNED, layout="csr")
    index = rng.integers(0, 4, s.values.size).astype(np.uint8)
    return s.with_values(index, None, codebook=np.array([-1, -0.3, 0.2, 0.9], np.float32))


def _packed(bits: int, symmetric: bool, group: int | None):
    spec = Spec(bits=bits, granularity="group" if group else "channel", group_size=group or 128,
                symmetric=symmetric, scale_dtype="float16")
    grid = choose_grid(W.astype(np.float64), spec)
    return to_tensor(W.shape, quantize(W, grid), grid)


TENSORS = {
    "dense": lambda: DenseTensor(W.copy()),
    "dense f16": lambda: DenseTensor(W.astype(np.float16)),
    "sparse csr": lambda: SparseTensor.from_dense(PRUNED, layout="csr"),
    "sparse bitmask": lambda: SparseTensor.from_dense(PRUNED, layout="bitmask"),
    "sparse gaps": lambda: SparseTensor.from_dense(PRUNED, layout="gaps"),
    "sparse int8": lambda: _quantize_sparse(SparseTensor.from_dense(PRUNED)),
    "int8 channel": lambda: quantize_int8(W, axis=0, symmetric=True),
    "int8 tensor asym": lambda: quantize_int8(W, axis=None, symmetric=False),
    "codebook": lambda: CodebookTensor.from_index(
        W.shape, rng.integers(0, 8, W.size), np.linspace(-1, 1, 8)),
    "codebook rows": lambda: CodebookTensor.from_index(
        W.shape, rng.integers(0, 3, 6), rng.standard_normal((3, 8)), unit="row"),
    "sparse codebook": _sparse_codebook,
    "4-bit group 4 asym": lambda: _packed(4, False, 4),
    "3-bit channel sym": lambda: _packed(3, True, None),
    "2-bit group 3 sym": lambda: _packed(2, True, 3),
}


def _same(a, b):
    assert type(a) is type(b) and a.params() == b.params()
    assert a.arrays().keys() == b.arrays().keys()
    for k in a.arrays():
        assert a.arrays()[k].dtype == b.arrays()[k].dtype
        np.testing.assert_array_equal(a.arrays()[k], b.arrays()[k], err_msg=k)


@pytest.mark.parametrize("kind", TENSORS)
def test_untouched_parameters_store_back_exactly(kind):
    t = TENSORS[kind]()
    p = parametrize(t)
    np.testing.assert_array_equal(p.weight(), t.decode())
    _same(p.store(), t)


@pytest.mark.parametrize("kind", TENSORS)
def test_constraints_hold_after_updates(kind):
    t = TENSORS[kind]()
    p = parametrize(t)
    lr = 0.5 if t.encoding == "quantized" and t.packed else 0.05     # coarse grids: big steps
    for _ in range(3):
        p.variable -= lr * p.grad(rng.standard_normal(t.shape).astype(np.float32))
        p.project()
    new = p.store()
    np.testing.assert_allclose(new.decode(), p.weight(), rtol=0, atol=1e-6)
    assert not np.array_equal(new.decode(), t.decode())          # it did train
    if isinstance(t, SparseTensor):
        assert new.layout == t.layout
        np.testing.assert_array_equal(new.coords(), t.coords())    # the mask holds
        assert not new.decode()[t.decode() == 0][~_stored(t)].any()
    if t.encoding == "quantized" or getattr(t, "scale", None) is not None:
        np.testing.assert_array_equal(new.scale, t.scale)          # same grid
    if t.encoding == "quantized" and t.packed:
        assert new.bits == t.bits and new.group_size == t.group_size
        u = new.unsigned_codes()
        assert u.max() < 2 ** t.bits and (t.zero_point is not None or u.min() >= 1)
    if hasattr(t, "codebook") and t.codebook is not None:
        old_index = t.index() if isinstance(t, CodebookTensor) else t.values
        new_index = new.index() if isinstance(new, CodebookTensor) else new.values
        np.testing.assert_array_equal(new_index, old_index)        # who shares with whom
        assert new.codebook.shape == t.codebook.shape


def _stored(t: SparseTensor) -> np.ndarray:
    keep = np.zeros((t.rows, t.cols), bool)
    keep[t.coords()] = True
    return keep.reshape(t.shape)[t.decode() == 0]


@pytest.mark.parametrize("kind", ["codebook", "codebook rows", "sparse codebook"])
def test_centroid_gradient_is_the_sum_over_its_weights(kind):
    p = parametrize(TENSORS[kind]())
    g = rng.standard_normal(W.shape)
    analytic = p.grad(g)
    for idx in np.ndindex(*p.variable.shape):              # weight() is linear in C
        p.variable[idx] += 1.0
        hi = (p.weight() * g).sum()
        p.variable[idx] -= 1.0
        lo = (p.weight() * g).sum()
        assert analytic[idx] == pytest.approx(hi - lo, rel=1e-4, abs=1e-4)
