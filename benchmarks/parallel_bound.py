"""The ceiling of data parallelism on this machine: independent processes, no transfer at all.

    python benchmarks/parallel_bound.py
    python benchmarks/parallel_bound.py --models lenet300 --batch 256 --runs 1000
    optcli import real_models/minilm -o minilm.npz
    python benchmarks/parallel_bound.py --models minilm.npz --runs 10       # seq 16

For each sample model, batch `--batch` of random inputs is run `--runs` times by (a) one
process with 2 BLAS threads (the data-parallel baseline) and (b) two independent processes
with 1 BLAS thread each, started together (every BLAS/OpenMP thread variable set to 1 before
NumPy loads: with only OPENBLAS_NUM_THREADS set, the two processes slowed each other 4x here).
(b) is what data parallelism could reach with free transfers; the printed ceiling is
2 x time(a) / mean time(b). Measured 2026-11-29 on the idle 2-core VM: LeNet-300 at batch
256 1.05 ms with 2 threads, 1.73/1.85 ms in each of two 1-thread processes: ceiling 1.18x,
below the issue's 1.4x target however the batches are moved.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHILD = """
import sys, time
import numpy as np
sys.path.insert(0, {root!r})
from optcli.feeds import batch_feeds
from optcli.io import load_model
from optcli.runtime import Runtime
m = load_model({path!r})
rt = Runtime(m)
x = batch_feeds(m, {batch}, seq={seq})
for _ in range(3):
    rt.run(x)
t = time.perf_counter()
for _ in range({runs}):
    rt.run(x)
print((time.perf_counter() - t) / {runs} * 1e3)
"""
THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def run(model: str, batch: int, runs: int, threads: int, copies: int, seq: int) -> list[float]:
    env = dict(os.environ, **{v: str(threads) for v in THREAD_VARS})
    path = Path(model) if model.endswith(".npz") else ROOT / "sample_models" / f"{model}.npz"
    code = CHILD.format(root=str(ROOT), path=str(path), batch=batch, runs=runs, seq=seq)
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE,
                              text=True) for _ in range(copies)]
    return [float(p.communicate()[0]) for p in procs]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="lenet300,lenet5")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--runs", type=int, default=500)
    ap.add_argument("--seq", type=int, default=16, help="tokens per sequence (text models)")
    args = ap.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f}")
    print("| model | 1 process × 2 threads | 2 processes × 1 thread (each) | ceiling |")
    print("|---|---|---|---|")
    for model in args.models.split(","):
        (one,) = run(model, args.batch, args.runs, 2, 1, args.seq)
        two = run(model, args.batch, args.runs, 1, 2, args.seq)
        print(f"| {model} | {one:.3f} ms | {' / '.join(f'{t:.3f}' for t in two)} ms | "
              f"{2 * one / (sum(two) / 2):.2f}× |", flush=True)


if __name__ == "__main__":
    main()
