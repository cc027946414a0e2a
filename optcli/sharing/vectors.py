"""Vector k-means: whole rows, filters or kernels share one parameter set.

Deep Compression (Han, Mao, Dally, ICLR 2016) shares scalars; sharing whole units is vector
quantization of the weights (Gong et al., "Compressing Deep Convolutional Networks using
Vector Quantization", 2014): the units of a layer (rows of a linear W[out, in], filters
[C*kh*kw] or kernels [kh*kw] of a conv W[O, C, kh, kw]) are clustered into k centroids and each
unit is stored as a log2(k)-bit index into them.

Lloyd with squared Euclidean distance, ||u||² - 2 u·c + ||c||² computed by one BLAS product per
chunk of units (chunks keep the [n, k] distance matrix under ~4 M floats). Initialisation:
- kmeans++ (Arthur & Vassilvitskii 2007): seeded D² sampling, the usual choice;
- norm: the units sorted by L2 norm, k of them at evenly spaced ranks (the vector analogue of
  linear init: the largest-norm unit is always a centroid).
An empty cluster is re-seeded with the unit farthest from its centroid. Deterministic for a
given Generator state.

    centroids, index = kmeans_vectors(w.reshape(-1, 9), k=16, init="kmeans++", rng=rng)
"""

from __future__ import annotations

import numpy as np

INITS = ("kmeans++", "norm")
CHUNK_FLOATS = 1 << 22


def kmeans_vectors(units: np.ndarray, k: int, init: str = "kmeans++", iterations: int = 50,
                   rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
    """units [n, d] -> (centroids float32 [k', d] with k' = min(k, n), index int64 [n])."""
    u = np.asarray(units, np.float64)
    rng = rng if rng is not None else np.random.default_rng(0)
    k = min(k, u.shape[0])
    if k == 0:
        return np.zeros((0, u.shape[1]), np.float32), np.zeros(0, np.int64)
    c = _init(u, k, init, rng)
    index = None
    for _ in range(max(iterations, 1)):
        new, dist = nearest(u, c)
        if index is not None and np.array_equal(new, index):
            break
        index = new
        c = _update(u, index, dist, c)
    index, _ = nearest(u, c)
    return c.astype(np.float32), index


def nearest(u: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of the nearest centroid of every unit and its squared distance, [n] each."""
    index, dist = np.empty(u.shape[0], np.int64), np.empty(u.shape[0])
    step = max(1, CHUNK_FLOATS // max(c.shape[0], 1))
    c32 = c.astype(np.float32)                 # float32 distances: sgemm, half the traffic
    cc = (c32 * c32).sum(axis=1)
    for a in range(0, u.shape[0], step):
        block = u[a:a + step].astype(np.float32)
        d2 = block @ (-2 * c32.T)                                      # [chunk, k]
        d2 += cc
        index[a:a + step] = d2.argmin(axis=1)
        best = d2[np.arange(block.shape[0]), index[a:a + step]]
        dist[a:a + step] = np.maximum(best + (block * block).sum(axis=1), 0)
    return index, dist


def _update(u: np.ndarray, index: np.ndarray, dist: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Cluster means; each empty cluster takes the farthest remaining unit."""
    k = c.shape[0]
    counts = np.bincount(index, minlength=k)
    sums = np.zeros_like(c)
    order = np.argsort(index, kind="stable")          # units grouped by cluster
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    full = counts > 0
    sums[full] = np.add.reduceat(u[order], starts[full], axis=0)
    out = np.where(counts[:, None] > 0, sums / np.maximum(counts, 1)[:, None], c)
    far = np.argsort(-dist, kind="stable")
    for slot, unit in zip(np.flatnonzero(counts == 0), far):
        out[slot] = u[unit]
    return out


def _init(u: np.ndarray, k: int, init: str, rng: np.random.Generator) -> np.ndarray:
    if init == "norm":
        order = np.argsort(np.linalg.norm(u, axis=1), kind="stable")
        return u[order[np.linspace(0, u.shape[0] - 1, k).round().astype(np.int64)]].copy()
    if init == "kmeans++":
        return _kmeans_pp(u, k, rng)
    raise ValueError(f"unknown init {init!r}; valid: {', '.join(INITS)}")


def _kmeans_pp(u: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """D² sampling: each next centroid is a unit drawn with probability ∝ its squared distance
    to the nearest centroid so far (uniform once every unit coincides with a centroid)."""
    c = [u[rng.integers(u.shape[0])]]
    d2 = ((u - c[0]) ** 2).sum(axis=1)
    for _ in range(1, k):
        total = d2.sum()
        p = d2 / total if total > 0 else None
        c.append(u[rng.choice(u.shape[0], p=p)])
        d2 = np.minimum(d2, ((u - c[-1]) ** 2).sum(axis=1))
    return np.array(c)

