"""Speed of a factorized linear layer (the `lowrank` step's rewrite) against the dense one.

    python benchmarks/lowrank_speed.py                        # 4096x4096, rank 256, batch 256 and 1
    python benchmarks/lowrank_speed.py --size 4096 --rank 256 --batch 256,1 --repeats 30 --threads 1

A [size, size] linear (with bias) and its rank-`rank` factorization (x @ B.T then @ A.T + bias,
as `optcli/lowrank/rewrite.py` builds it) run through optcli's fast Runtime, interleaved in
one process (`optcli.bench.measure`), ratio of medians. FLOPs: size^2 against
2 * rank * size per row, so the ideal ratio is size / (2 * rank) = 8 at 4096 / 256. The factors
are random: the time of a matmul does not depend on its values, and an exact SVD of a 4096^2
matrix would add minutes without changing the timing. Target (issue 6): >= 6x at batch 256.
Measured here (1 BLAS thread, one run on a shared 2-core box):

    batch   dense ms   rank-256 ms   speedup
    256       97.19        13.51       7.19
    1          2.60         0.58       4.50
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))     # this checkout's optcli

from optcli.bench import measure  # noqa: E402
from optcli.builder import GraphBuilder  # noqa: E402
from optcli.graph import Model  # noqa: E402
from optcli.lowrank.rewrite import factorize_linear  # noqa: E402
from optcli.runtime import Runtime  # noqa: E402


def _threads(n: int):
    if not n:
        return contextlib.nullcontext()
    import threadpoolctl
    return threadpoolctl.threadpool_limits(n)


def _models(size: int, rank: int, seed: int = 0) -> tuple[Model, Model]:
    """The dense one-layer model and its factorized twin (random factors, same bias)."""
    rng = np.random.default_rng(seed)
    r = lambda *s: (rng.standard_normal(s) / np.sqrt(s[-1])).astype(np.float32)  # noqa: E731
    b = GraphBuilder("wide", task={"kind": "regression"})
    y = b.add("linear", name="fc", x=b.input("x", ["batch", size]),
              weight=b.weight("fc.w", r(size, size)), bias=b.weight("fc.b", r(size)))
    b.output(y, "y", ["batch", size])
    dense = b.build()
    return dense, factorize_linear(dense, "fc", r(size, rank), r(rank, size))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--rank", type=int, default=256)
    ap.add_argument("--batch", default="256,1", help="comma-separated batch sizes")
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--threads", type=int, default=1,
                    help="BLAS threads (0: leave as is; 2 on a busy 2-core box is noisy)")
    args = ap.parse_args()
    dense, low = _models(args.size, args.rank)
    rt_dense, rt_low = Runtime(dense), Runtime(low)
    rows = []
    for batch in (int(b) for b in args.batch.split(",")):
        feeds = {"x": np.random.default_rng(1).standard_normal((batch, args.size)).astype("f4")}
        with _threads(args.threads):
            t_dense, t_low = measure([lambda: rt_dense.run(feeds), lambda: rt_low.run(feeds)],
                                     batch=batch, repeats=args.repeats, warmup=3)
        rows.append({"batch": batch, "median_ms": [round(t_dense.median_ms, 3),
                                                   round(t_low.median_ms, 3)],
                     "speedup": round(t_dense.median_ms / t_low.median_ms, 2)})
    print(json.dumps({"size": args.size, "rank": args.rank, "threads": args.threads,
                      "ideal_speedup": args.size / (2 * args.rank), "results": rows}, indent=1))


if __name__ == "__main__":
    main()
