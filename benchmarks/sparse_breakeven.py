"""Break-even density of scipy CSR against dense BLAS for `linear`, on this machine.

    pip install -e '.[sparse]'
    python benchmarks/sparse_breakeven.py                        # 512², 1024², 4096²
    python benchmarks/sparse_breakeven.py --sizes 128,256,512 --repeats 9 --threads 1
    python benchmarks/sparse_breakeven.py --sizes 4096 --batches 1 --repeats 51 --stat median

For each square weight W[n, n] (random values, a uniformly random keep-mask) and each density
d in 1..50 %, the fast dense kernel (x @ W.T, W laid out as the runtime lays it out) and the
CSR kernel (`kernels.sparse.linear_csr`) are timed interleaved in one process
(optcli.bench.measure), at batch 1 and batch 256. The table gives dense / CSR fastest time
(> 1: CSR faster); the break-even density is where that ratio crosses 1, linearly
interpolated between measured densities (0 when CSR never wins, ">= max" when it always
does). The numbers in optcli/kernels/breakeven.py come from this script.
"""

from __future__ import annotations

import argparse

import numpy as np

from optcli.bench import measure
from optcli.formats import SparseTensor
from optcli.kernels import sparse
from optcli.kernels.fast.dense import linear
from optcli.threads import blas_threads

DENSITIES = (0.01, 0.02, 0.05, 0.10, 0.20, 0.30, 0.50)


def ratio(n: int, density: float, batch: int, repeats: int, rng, stat: str = "min") -> float:
    """dense / CSR time for W[n, n] at `density`, x[batch, n]. The fastest run of each side is
    compared, not the median: this machine is shared, and a busy neighbour stalls the
    2-thread BLAS far more than single-threaded scipy, so medians swing 50x between runs."""
    w = rng.standard_normal((n, n)).astype(np.float32)
    w[rng.random((n, n)) >= density] = 0
    dense = np.ascontiguousarray(w.T).T                  # as runtime._load lays it out
    csr = sparse.to_csr(SparseTensor.from_dense(w))
    x = rng.standard_normal((batch, n)).astype(np.float32)
    np.testing.assert_allclose(linear(x, dense), sparse.linear_csr(x, csr), rtol=1e-3,
                               atol=1e-3)
    t_dense, t_csr = measure([lambda: linear(x, dense), lambda: sparse.linear_csr(x, csr)],
                             batch, repeats=repeats, warmup=2)
    if stat == "median":
        return t_dense.median_ms / t_csr.median_ms
    return min(t_dense.samples_ms) / min(t_csr.samples_ms)


def breakeven(densities: list[float], ratios: list[float]) -> float:
    """Density where ratio (dense/CSR) falls through 1, interpolated; 0 if CSR never wins."""
    if ratios[0] < 1:
        return 0.0
    for (d0, r0), (d1, r1) in zip(zip(densities, ratios), zip(densities[1:], ratios[1:])):
        if r1 < 1 <= r0:
            return d0 + (r0 - 1) / (r0 - r1) * (d1 - d0)
    return densities[-1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="512,1024,4096")
    ap.add_argument("--batches", default="1,256")
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--threads", type=int, default=0, help="BLAS threads (0: BLAS default)")
    ap.add_argument("--stat", choices=("min", "median"), default="min",
                    help="compare the fastest runs (default) or the medians")
    args = ap.parse_args()
    with blas_threads(args.threads or None):      # 0: leave BLAS at its default
        table(args)


def table(args: argparse.Namespace) -> None:
    rng = np.random.default_rng(0)
    print(f"{'n':>5} {'batch':>5}  " + " ".join(f"{d:>6.0%}" for d in DENSITIES)
          + "  break-even")
    for n in map(int, args.sizes.split(",")):
        for batch in map(int, args.batches.split(",")):
            # big products are slow on the CSR side: fewer repeats, stop once CSR is 3x slower
            reps = max(3, args.repeats // 3) if n * n * batch > 1 << 30 else args.repeats
            ds, rs = [], []
            for d in DENSITIES:
                ds.append(d)
                rs.append(ratio(n, d, batch, reps, rng, args.stat))
                if rs[-1] < 1 / 3:
                    break
            cells = " ".join(f"{r:>6.2f}" for r in rs) + " " * 7 * (len(DENSITIES) - len(rs))
            be = breakeven(ds, rs)
            shown = f">={be:.0%}" if be == DENSITIES[-1] and rs[-1] >= 1 else f"{be:.1%}"
            print(f"{n:>5} {batch:>5}  {cells}  {shown}", flush=True)


if __name__ == "__main__":
    main()
