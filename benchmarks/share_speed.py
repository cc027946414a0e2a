"""Speed of scalar weight sharing: 1-D k-means of 1 M weights at 5 bits (32 centroids).

    python benchmarks/share_speed.py
    python benchmarks/share_speed.py --n 4000000 --bits 4

For each initialisation (linear, density, random) times `kmeans1d` (sort once, exact Lloyd on
prefix sums, searchsorted assignment; optcli/sharing/kmeans1d.py) end to end, best of
`--repeats`, and prints the WCSS it reaches. For comparison: the naive Lloyd (an [n, k]
distance matrix per iteration, in 64 K chunks) for `--naive-iters` iterations, and the DP
optimum (Ckmeans.1d.dp on a 1024-bin histogram, then polished by Lloyd) as the yardstick.
Weights are Gaussian, as in a trained layer's bulk. The issue's target: <= 2 s for 1 M at 5 bits.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from optcli.sharing.kmeans1d import (  # noqa: E402
    Sorted1D,
    dp_centroids,
    initial_centroids,
    kmeans1d,
    lloyd,
)


def best_of(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def naive_lloyd(w: np.ndarray, mu: np.ndarray, iterations: int) -> np.ndarray:
    """The textbook O(n*k) iteration: distances to every centroid, argmin, means."""
    mu = mu.astype(np.float32)
    for _ in range(iterations):
        idx = np.concatenate([np.abs(w[a:a + 65536, None] - mu).argmin(axis=1)
                              for a in range(0, w.size, 65536)])
        sums = np.bincount(idx, weights=w, minlength=mu.size)
        counts = np.bincount(idx, minlength=mu.size)
        mu = np.where(counts > 0, sums / np.maximum(counts, 1), mu).astype(np.float32)
    return mu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--bits", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--naive-iters", type=int, default=20)
    args = ap.parse_args()
    w = np.random.default_rng(0).standard_normal(args.n).astype(np.float32)
    k = 2 ** args.bits
    data = Sorted1D(w)
    print(f"{args.n:,} weights, {k} centroids")
    print(f"{'method':<34} {'seconds':>8} {'WCSS':>12}")
    for init in ("linear", "density", "random"):
        s, (mu, _) = best_of(lambda: kmeans1d(w, k, init, rng=np.random.default_rng(0)),
                             args.repeats)
        print(f"{'kmeans1d ' + init:<34} {s:>8.3f} {data.wcss(mu.astype(np.float64)):>12.2f}")
    start = initial_centroids(data, k, "linear")
    s, mu = best_of(lambda: naive_lloyd(w, start, args.naive_iters), 1)
    print(f"{f'naive Lloyd, {args.naive_iters} iterations':<34} {s:>8.3f} "
          f"{data.wcss(mu.astype(np.float64)):>12.2f}")
    s, mu = best_of(lambda: lloyd(data, dp_centroids(w, k), 1000), 1)
    print(f"{'DP (1024 bins) + Lloyd polish':<34} {s:>8.3f} {data.wcss(mu):>12.2f}")


if __name__ == "__main__":
    main()
