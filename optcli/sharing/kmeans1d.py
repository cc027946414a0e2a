"""Scalar (1-D) k-means for weight sharing (Deep Compression: Han, Mao, Dally, ICLR 2016, §3).

The n weights of a layer are replaced by k = 2**bits shared values (centroids) minimising the
within-cluster sum of squares (WCSS); each weight then stores a log2(k)-bit index.

Method (exact Lloyd, not an approximation): sort the values once and collapse duplicates to
(value x[m], count c[m]). In 1-D every k-means cluster is a contiguous run of the sorted
values, cut at the midpoints between consecutive centroids, so one Lloyd iteration is
  cuts = searchsorted(x, midpoints)                          # O(k log m)
  mean_j = (S1[cut_j+1] - S1[cut_j]) / (S0[cut_j+1] - S0[cut_j])   # O(k), prefix sums
with S0, S1 (and S2 for the WCSS) the float64 prefix sums of c, c*x, c*x². After the
O(n log n) sort, iterations cost nothing, so we iterate to the exact fixed point (cuts stop
changing), bounded by `iterations` (default 1,000: a Gaussian at k = 32 needs ~600 at ~25 µs
each). The final assignment of all n weights is searchsorted(midpoints, w), exact for the
final centroids. 1 M weights at 5 bits take ~0.25 s, nearly all of it the sort
(benchmarks/share_speed.py); a naive O(n*k) Lloyd takes seconds.

Initialisations (the paper compares these three; linear was best since it keeps the few
large weights, which matter most, as centroids):
- linear: k values evenly spaced over [min, max];
- density: the (j + 1/2)/k quantiles of the weights (the CDF spaced evenly on its y-axis);
- random: Forgy, k distinct weights drawn uniformly (seeded by the caller's Generator).

`dp_centroids` is the exact optimum (the Ckmeans.1d.dp dynamic programme, Wang & Song, The R
Journal 2011) on a histogram of the values, the yardstick tests and benchmarks measure Lloyd
against: O(k * bins²), so not the default. Measured on 1 M Gaussian weights at k = 32, linear
init ends at the WCSS of the DP solution polished by Lloyd (2510.83 vs 2510.91).

    centroids, index = kmeans1d(w.ravel(), k=32, init="linear")
"""

from __future__ import annotations

import numpy as np

INITS = ("linear", "density", "random")


class Sorted1D:
    """Sorted distinct values x[m] (float64) with counts c[m] and prefix sums S0, S1, S2 [m+1]."""

    def __init__(self, values: np.ndarray):
        self.x, counts = np.unique(np.asarray(values, np.float64), return_counts=True)
        c = counts.astype(np.float64)
        self.s0 = np.concatenate([[0.0], np.cumsum(c)])
        self.s1 = np.concatenate([[0.0], np.cumsum(c * self.x)])
        self.s2 = np.concatenate([[0.0], np.cumsum(c * self.x * self.x)])

    def cuts(self, centroids: np.ndarray) -> np.ndarray:
        """Cluster j is x[cut[j]:cut[j+1]]: values in [mid_{j-1}, mid_j). int64 [k+1]."""
        mids = (centroids[:-1] + centroids[1:]) / 2
        inner = np.searchsorted(self.x, mids, side="left")
        return np.concatenate([[0], inner, [self.x.size]])

    def wcss(self, centroids: np.ndarray) -> float:
        """Sum over clusters of sum c*(x - mu)^2 = S2 - 2 mu S1 + mu^2 S0 on each run."""
        cut = self.cuts(centroids)
        n0, n1, n2 = (np.diff(s[cut]) for s in (self.s0, self.s1, self.s2))
        return float(np.maximum(n2 - 2 * centroids * n1 + centroids ** 2 * n0, 0).sum())


def kmeans1d(values: np.ndarray, k: int, init: str = "linear", iterations: int = 1000,
             rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Lloyd's k-means of 1-D `values` (any shape, flattened): (centroids float32 [<= k],
    sorted and all used; index [n] int64 into them). Deterministic for a given rng state."""
    flat = np.asarray(values, np.float32).reshape(-1)
    if flat.size == 0:
        return np.zeros(0, np.float32), np.zeros(0, np.int64)
    data = Sorted1D(flat)
    if data.x.size <= k:                                  # every distinct value is a centroid
        mu = data.x
    else:
        mu = lloyd(data, initial_centroids(data, k, init, rng), iterations)
    return assign(flat, mu)


def initial_centroids(data: Sorted1D, k: int, init: str,
                      rng: np.random.Generator | None = None) -> np.ndarray:
    """k sorted starting centroids (float64); duplicates are allowed and simply stay empty."""
    lo, hi, n = data.x[0], data.x[-1], data.s0[-1]
    if init == "linear":
        return np.linspace(lo, hi, k)
    if init == "density":          # x at CDF = (j + 1/2) / k: the weighted quantiles
        pos = np.searchsorted(data.s0, (np.arange(k) + 0.5) / k * n, side="right") - 1
        return data.x[np.clip(pos, 0, data.x.size - 1)]
    if init == "random":           # Forgy: k distinct weights (by position among all n)
        rng = rng if rng is not None else np.random.default_rng(0)
        picks = np.sort(rng.choice(int(n), size=k, replace=False))
        return data.x[np.searchsorted(data.s0, picks, side="right") - 1]
    raise ValueError(f"unknown init {init!r}; valid: {', '.join(INITS)}")


def lloyd(data: Sorted1D, centroids: np.ndarray, iterations: int) -> np.ndarray:
    """Weighted Lloyd iterations to a fixed point (cuts unchanged) or `iterations` rounds.
    A centroid left with no values (e.g. a linear-init centroid inside the gap a pruned layer
    has around zero) is moved into the cluster with the largest WCSS, splitting it, and the
    iterations resume: each move lowers the WCSS, so every one of the k codes gets used
    whenever there are at least k distinct values."""
    mu = _fixed_point(data, np.sort(np.asarray(centroids, np.float64)), iterations)
    for _ in range(mu.size):
        cut = data.cuts(mu)
        n0, n1, n2 = (np.diff(s[cut]) for s in (data.s0, data.s1, data.s2))
        empty = np.flatnonzero(n0 == 0)
        sse = np.where(n0 > 0, n2 - n1 * n1 / np.maximum(n0, 1e-300), -1.0)
        worst = int(sse.argmax())
        if not empty.size or sse[worst] <= 0:
            break
        lo, hi = cut[worst], cut[worst + 1]              # the worst cluster: x[lo:hi]
        mid = lo + int(np.searchsorted(data.s0[lo:hi + 1], data.s0[lo] + n0[worst] / 2))
        right = data.x[min(max(mid, lo + 1), hi - 1):hi]  # its upper half, never empty
        mu[empty[0]] = np.average(right, weights=np.diff(data.s0[hi - right.size:hi + 1]))
        mu = _fixed_point(data, np.sort(mu), iterations)
    return mu


def _fixed_point(data: Sorted1D, mu: np.ndarray, iterations: int) -> np.ndarray:
    prev = None
    for _ in range(max(iterations, 1)):
        cut = data.cuts(mu)
        if prev is not None and np.array_equal(cut, prev):
            break
        n0, n1 = np.diff(data.s0[cut]), np.diff(data.s1[cut])
        mu = np.where(n0 > 0, n1 / np.maximum(n0, 1e-300), mu)   # empty: keep its centroid
        prev = cut
    return mu


def assign(values: np.ndarray, centroids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest centroid of every value (ties to the upper one), dropping unused centroids.
    Returns (used centroids float32 [k'], index int64 [n])."""
    mu = np.unique(np.asarray(centroids, np.float32))                  # sorted, distinct
    # midpoints in float64 of the float32 centroids, so the cut is exactly between them
    mids = (mu[:-1].astype(np.float64) + mu[1:]) / 2
    index = np.searchsorted(mids, np.asarray(values, np.float64).reshape(-1), side="right")
    used = np.bincount(index, minlength=mu.size) > 0
    remap = np.cumsum(used) - 1
    return mu[used], remap[index]


def dp_centroids(values: np.ndarray, k: int, bins: int = 1024) -> np.ndarray:
    """Centroids of the optimal k-clustering of `values` snapped to `bins` equal-width bins
    (each non-empty bin's mean is a point weighted by its count), by the O(k * bins²) dynamic
    programme of Ckmeans.1d.dp. A yardstick for Lloyd (tests, benchmarks): polished by
    `lloyd` on the exact data it is within the binning error of the true optimum."""
    v = np.asarray(values, np.float64).reshape(-1)
    b = np.clip(((v - v.min()) / max(np.ptp(v), 1e-300) * bins).astype(np.int64), 0, bins - 1)
    c = np.bincount(b, minlength=bins).astype(np.float64)
    keep = c > 0
    x = np.bincount(b, weights=v, minlength=bins)[keep] / c[keep]
    c = c[keep]
    s0, s1, s2 = (np.concatenate([[0.0], np.cumsum(a)]) for a in (c, c * x, c * x * x))
    i, j = np.triu_indices(x.size)            # cost[i, j]: one cluster over points i..j
    cost = np.full((x.size, x.size), np.inf)
    n1 = s1[j + 1] - s1[i]
    cost[i, j] = np.maximum(s2[j + 1] - s2[i] - n1 * n1 / (s0[j + 1] - s0[i]), 0)
    best, starts = cost[0].copy(), []        # best[j]: points 0..j in q+1 clusters
    for _ in range(1, min(k, x.size)):       # best'[j] = min_i best[i-1] + cost[i, j]
        total = np.concatenate([[np.inf], best[:-1]])[:, None] + cost
        starts.append(total.argmin(axis=0))
        best = total.min(axis=0)
    return _backtrack(x, c, starts)


def _backtrack(x: np.ndarray, c: np.ndarray, starts: list[np.ndarray]) -> np.ndarray:
    """Cluster means of the DP's optimal partition, walking the stages back from the last
    point: stage q's cluster ending at `end` starts at starts[q-1][end]."""
    end, mus = x.size - 1, []
    for stage in range(len(starts), -1, -1):
        i = int(starts[stage - 1][end]) if stage else 0
        mus.append(np.average(x[i:end + 1], weights=c[i:end + 1]))
        end = i - 1
    return np.sort(np.array(mus))
