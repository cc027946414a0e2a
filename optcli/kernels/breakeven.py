"""Where CSR `linear` (scipy.sparse) beats dense BLAS: break-even densities measured here.

Measured by `benchmarks/sparse_breakeven.py --sizes 256,512,1024,4096 --repeats 21` (BLAS
default threads, i.e. 2) on an idle 2-core Skylake-X VM (OpenBLAS 0.3.31, scipy 1.17.1, NumPy
2.4.6): square weights W[n, n], density = nonzeros / size, fastest of the interleaved runs of
each side. Each entry is the lowest of three runs: two on 2026-11-28 with single-threaded CSR
and one on 2026-11-29 with CSR cut into one row block per BLAS thread (kernels/sparse.py), so
it stays on the safe side of both. CSR is faster below the density given. Two regimes:
batch 1 (a matrix-vector product, bound by reading W, so CSR wins while its ~8 bytes per
nonzero read less than 4 bytes per weight) and batch 256 (a matrix product, where dense BLAS
is compute-efficient). Small layers never win at batch 1: scipy's call overhead (~10 us) is
more than the whole dense product. The 4096 x 4096 layer at 90 % sparsity, batch 1, runs
1.8-1.9x faster as CSR (median, interleaved; 2.0-2.2x fastest-of-runs).
"""

from __future__ import annotations

from typing import Callable, Iterable

# weight side n (W is n x n) -> {batch: break-even density}; 0.0: CSR never faster
BREAKEVEN: dict[int, dict[int, float]] = {
    256: {1: 0.0, 256: 0.016},
    512: {1: 0.045, 256: 0.027},
    1024: {1: 0.049, 256: 0.042},
    4096: {1: 0.100, 256: 0.054},
}
SAFETY = 1.0            # measured with the BLAS threads the runtime uses; lower of two runs
BATCHES = (1, 256)


def breakeven_density(rows: int, cols: int, batch: int) -> float:
    """Density below which CSR beats dense for W[rows, cols] at `batch` (1 or 256): the entry
    of the largest measured n*n <= rows*cols (so sizes between measurements get the smaller,
    more conservative figure); 0 below the smallest measured size."""
    fitting = [n for n in BREAKEVEN if n * n <= rows * cols]
    return SAFETY * BREAKEVEN[max(fitting)][batch] if fitting else 0.0


def csr_is_faster(rows: int, cols: int, density: float,
                  rule: Callable[[Iterable[bool]], bool] = all) -> bool:
    """True when CSR wins at every batch regime (rule=all) or at some (rule=any)."""
    return rule(density < breakeven_density(rows, cols, b) for b in BATCHES)
