"""The runtime's sparse-or-dense choice: measured break-evens, never slower, same outputs."""

import numpy as np
import pytest

from optcli.builder import GraphBuilder
from optcli.formats import SparseTensor
from optcli.kernels import sparse
from optcli.kernels.breakeven import BREAKEVEN, breakeven_density, csr_is_faster
from optcli.runtime import Runtime
from optcli.steps import STEPS
from optcli.steps.base import StepContext


def test_small_layers_never_run_as_csr():
    for density in (0.0001, 0.01, 0.1):
        assert not csr_is_faster(100, 100, density, any)
        assert not csr_is_faster(200, 300, density)        # below 256 x 256


@pytest.mark.parametrize("n", sorted(BREAKEVEN))
def test_decision_is_monotone_and_auto_is_the_stricter(n):
    densities = np.linspace(0, 1, 201)
    auto = [csr_is_faster(n, n, d) for d in densities]
    compact = [csr_is_faster(n, n, d, any) for d in densities]
    assert auto == sorted(auto, reverse=True) and compact == sorted(compact, reverse=True)
    assert all(c or not a for a, c in zip(auto, compact))
    assert not any(auto[100:])                               # never at 50 % density


def test_between_measured_sizes_the_smaller_figure_applies():
    for batch in (1, 256):
        assert breakeven_density(700, 700, batch) == breakeven_density(512, 512, batch)
        assert breakeven_density(8192, 8192, batch) == breakeven_density(4096, 4096, batch)


def _wide(sparsity: float):
    rng = np.random.default_rng(0)
    b = GraphBuilder("wide", task={"kind": "regression"})
    w = rng.standard_normal((512, 512)).astype(np.float32)
    h = b.add("linear", name="fc", x=b.input("x", ["batch", 512]), weight=b.weight("fc.w", w),
              bias=b.weight("fc.b", rng.standard_normal(512).astype(np.float32)))
    b.output(b.add("relu", x=h), "logits", ["batch", 512])
    cfg = STEPS["prune"].Config(sparsity=sparsity)
    return STEPS["prune"].apply(b.build(), cfg, StepContext())[0]


@pytest.mark.skipif(not sparse.available(), reason="scipy not installed")
@pytest.mark.parametrize("sparsity, auto_form, compact_form", [
    (0.99, "csr", "csr"),              # below both break-evens of a 512 x 512 weight
    (0.965, "decoded", "csr"),         # CSR wins at batch 1 only: auto keeps dense
    (0.5, "decoded", "decode-per-call"),
])
def test_runtime_picks_csr_only_where_it_is_faster(sparsity, auto_form, compact_form):
    m = _wide(sparsity)
    x = {"x": np.random.default_rng(1).standard_normal((3, 512)).astype(np.float32)}
    want = Runtime(m, "reference").run(x)["logits"]
    for policy, form in (("auto", auto_form), ("compact", compact_form)):
        rt = Runtime(m, weights=policy)
        assert {p["tensor"]: p["form"] for p in rt.plan()}["fc.w"] == form
        np.testing.assert_allclose(rt.run(x)["logits"], want, rtol=1e-4, atol=1e-4)


@pytest.mark.skipif(not sparse.available(), reason="scipy not installed")
@pytest.mark.parametrize("layout", ["csr", "gaps", "bitmask"])
@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("batch", [1, 5])
def test_row_blocks_in_threads_equal_the_dense_product(layout, threads, batch):
    rng = np.random.default_rng(3)
    w = rng.standard_normal((700, 300)).astype(np.float32)
    w[rng.random(w.shape) > 0.4] = 0                   # ~84k nonzeros: above SPLIT_MIN_NNZ
    w[17] = 0                                          # an empty row
    csr = sparse.to_csr(SparseTensor.from_dense(w, layout), threads=threads)
    assert len(csr.blocks) == threads
    assert sum(b.nnz for b in csr.blocks) == np.count_nonzero(w)
    x = rng.standard_normal((batch, 300)).astype(np.float32)
    bias = rng.standard_normal(700).astype(np.float32)
    np.testing.assert_allclose(sparse.linear_csr(x, csr, bias), x @ w.T + bias,
                               rtol=1e-4, atol=1e-4)
