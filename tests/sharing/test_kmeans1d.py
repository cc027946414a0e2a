"""1-D k-means (sharing/kmeans1d.py) against known optima and a naive O(n*k) Lloyd."""

import numpy as np
import pytest

from optcli.sharing.kmeans1d import (
    Sorted1D,
    assign,
    dp_centroids,
    initial_centroids,
    kmeans1d,
)


def naive_lloyd(x: np.ndarray, mu: np.ndarray, iterations: int) -> np.ndarray:
    """The textbook Lloyd: full [n, k] distance matrix, empty clusters keep their centroid."""
    x, mu = x.astype(np.float64), np.sort(mu.astype(np.float64))
    for _ in range(iterations):
        mids = (mu[:-1] + mu[1:]) / 2                      # same tie rule as kmeans1d
        idx = np.searchsorted(mids, x, side="right")
        d = np.abs(x[:, None] - mu[None, :])
        assert np.all(d[np.arange(x.size), idx] <= d.min(axis=1) + 1e-12)
        new = np.array([x[idx == j].mean() if np.any(idx == j) else mu[j]
                        for j in range(mu.size)])
        if np.array_equal(new, mu):
            break
        mu = new
    return mu


def test_converges_to_the_known_optimum_on_separated_clusters():
    rng = np.random.default_rng(0)
    centers = np.array([-5.0, 0.0, 3.0, 10.0])
    x = np.concatenate([rng.normal(c, 0.01, 200) for c in centers])
    for init in ("linear", "density"):         # Forgy (random) may start two in one cluster
        mu, idx = kmeans1d(x, 4, init)
        np.testing.assert_allclose(mu, centers, atol=0.01)
        np.testing.assert_array_equal(idx, np.repeat(np.arange(4), 200))


@pytest.mark.parametrize("init", ["linear", "density"])
def test_matches_a_naive_lloyd_on_random_data(init):
    rng = np.random.default_rng(3)
    x = rng.standard_normal(3000).astype(np.float32)
    start = initial_centroids(Sorted1D(x), 8, init)
    ref = naive_lloyd(x, start, 1000)
    mu, _ = kmeans1d(x, 8, init)
    np.testing.assert_allclose(mu, ref[np.unique(np.searchsorted(
        (ref[:-1] + ref[1:]) / 2, x, side="right"))], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("bits", [1, 2, 3, 5, 8])
def test_at_most_2_to_the_bits_distinct_values_and_each_is_nearest(bits):
    x = np.random.default_rng(bits).laplace(size=20000).astype(np.float32)
    mu, idx = kmeans1d(x, 2 ** bits)
    approx = mu[idx]
    assert np.unique(approx).size <= 2 ** bits
    dist = np.abs(x[:, None] - mu[None, :])
    assert np.all(np.abs(x - approx) <= dist.min(axis=1) + 1e-6)


def test_deterministic_for_a_seed_and_seed_matters_for_random():
    x = np.random.default_rng(0).standard_normal(5000)
    a = kmeans1d(x, 16, "random", iterations=5, rng=np.random.default_rng(7))
    b = kmeans1d(x, 16, "random", iterations=5, rng=np.random.default_rng(7))
    c = kmeans1d(x, 16, "random", iterations=5, rng=np.random.default_rng(8))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


def test_few_distinct_values_are_kept_exactly():
    x = np.array([0.5, -1.0, 0.5, 2.0, 2.0], np.float32)
    mu, idx = kmeans1d(x, 32)
    np.testing.assert_array_equal(mu[idx], x)
    assert kmeans1d(np.zeros(0), 4)[0].size == 0


def test_linear_lloyd_ends_near_the_dp_optimum():
    x = np.random.default_rng(5).standard_normal(50000)
    data = Sorted1D(x)
    mu, _ = kmeans1d(x, 16)
    best = data.wcss(dp_centroids(x, 16, bins=512))
    assert data.wcss(mu.astype(np.float64)) <= best * 1.01


def test_assign_drops_unused_centroids():
    mu, idx = assign(np.array([0.0, 0.1, 5.0]), np.array([0.0, 2.5, 5.0]))
    np.testing.assert_array_equal(mu, [0.0, 5.0])
    np.testing.assert_array_equal(idx, [0, 0, 1])


@pytest.mark.parametrize("init", ["linear", "density", "random"])
def test_a_pruned_layer_uses_every_code_and_splitting_lowers_the_wcss(init):
    """Linear init puts centroids in the gap a pruned layer has around zero; they are moved
    into the widest cluster instead of being lost (the old behaviour: 14 of 16 used)."""
    rng = np.random.default_rng(0)
    w = rng.standard_normal(200_000)
    w = w[np.abs(w) > 0.8]
    data = Sorted1D(w)
    mu, index = kmeans1d(w, 16, init, rng=np.random.default_rng(1))
    assert mu.size == 16 and np.unique(index).size == 16
    start = np.sort(initial_centroids(data, 16, init, np.random.default_rng(1)))
    plain = naive_lloyd(w[::10], start, 1000)            # Lloyd without the refill
    assert data.wcss(mu.astype(np.float64)) <= data.wcss(plain) + 1e-9
