"""A 4096 x 4096 `linear` at 90 % unstructured sparsity: dense BLAS against the runtime's CSR
kernel, each side alone in its own process.

    python benchmarks/sparse_isolated.py
    python benchmarks/sparse_isolated.py --density 0.1 --batches 1,256 --repeats 200

`sparse_breakeven.py` interleaves dense and CSR calls in one process; after every dense
product OpenBLAS's second thread keeps spinning on the other core and slows the next CSR call
(which runs its two row blocks on both cores). In a pruned model whose big layers all run as
CSR there is no such neighbour, so this script times each side in a fresh process: the dense
kernel on W laid out as the runtime lays it out, and `kernels.sparse.linear_csr` on the same
W stored sparse (2 BLAS threads, 2 CSR row blocks).
Measured 2026-11-29 on the idle 2-core VM, six runs: batch 1, dense 1.56-2.34 ms, CSR
0.81-1.04 ms: **1.67-2.33x, median 2.15x** (the issue's target: >= 2x); batch 256: 0.81-0.87x
(CSR is not chosen there: 10 % density is above the batch-256 break-even of 5.4 %).
"""

from __future__ import annotations

import argparse

from fresh_process import median_ms

SETUP = """
from optcli.formats import SparseTensor
from optcli.kernels import sparse
from optcli.kernels.fast.dense import linear
rng = np.random.default_rng(0)
w = rng.standard_normal((4096, 4096)).astype(np.float32)
w[rng.random(w.shape) >= {density}] = 0
x = rng.standard_normal(({batch}, 4096)).astype(np.float32)
if {side!r} == "dense":
    wd = np.ascontiguousarray(w.T).T
    f = lambda: linear(x, wd)
else:
    csr = sparse.to_csr(SparseTensor.from_dense(w))
    f = lambda: sparse.linear_csr(x, csr)
del w
"""


def side(name: str, density: float, batch: int, repeats: int) -> float:
    return median_ms(SETUP.format(side=name, density=density, batch=batch), repeats)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--density", type=float, default=0.1)
    ap.add_argument("--batches", default="1,256")
    ap.add_argument("--repeats", type=int, default=200)
    args = ap.parse_args()
    print(f"| batch | dense ms | CSR ms | CSR speedup |  (density {args.density:.0%})\n"
          "|---|---|---|---|")
    for batch in map(int, args.batches.split(",")):
        reps = args.repeats if batch < 64 else max(10, args.repeats // 10)
        d, c = side("dense", args.density, batch, reps), side("csr", args.density, batch, reps)
        print(f"| {batch} | {d:.3f} | {c:.3f} | {d / c:.2f}× |", flush=True)


if __name__ == "__main__":
    main()
