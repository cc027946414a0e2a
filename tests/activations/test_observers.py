"""Observers on known distributions; the histogram is streamed with bounded memory."""

import numpy as np
import pytest

from optcli.activations.observers import BINS, Histogram, choose_range, qparams


def _hist(*batches):
    h = Histogram()
    for b in batches:
        h.add(b)
    return h


def test_minmax_is_exact_and_streaming_grows_the_range():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(1000), 10 * rng.standard_normal(1000)
    h = _hist(a, b)
    assert h.count == 2000 and h.pos.shape == h.neg.shape == (BINS,)
    assert choose_range(h, "minmax", False) == (float(np.float32(min(a.min(), b.min()))),
                                                float(np.float32(max(a.max(), b.max()))))
    t = float(np.float32(np.abs(np.concatenate([a, b])).max()))
    assert choose_range(h, "minmax", True) == (-t, t)
    assert h.width * BINS >= t


def test_histogram_doubling_keeps_counts():
    h = _hist(np.linspace(0, 1, 500), np.linspace(-7, 7, 501))
    assert h.count == 1001 and h.pos.sum() == 500 + 251


def test_percentile_of_uniform():
    x = np.random.default_rng(1).uniform(-1, 1, 200_000)
    lo, hi = choose_range(_hist(x), "percentile", True, 99.0)
    assert hi == -lo and abs(hi - 0.99) < 0.005
    lo, hi = choose_range(_hist(x), "percentile", False, 99.0)      # 1st and 99th of x
    assert abs(lo + 0.98) < 0.005 and abs(hi - 0.98) < 0.005


@pytest.mark.parametrize("observer", ["mse", "kl", "percentile"])
@pytest.mark.parametrize("symmetric", [True, False])
def test_heavy_tails_are_clipped_below_the_max(observer, symmetric):
    x = np.random.default_rng(2).standard_t(2, 200_000).astype(np.float32)   # heavy tails
    h = _hist(x)
    lo, hi = choose_range(h, observer, symmetric)
    amax = float(np.abs(x).max())
    assert 0 < hi < (0.9 if observer == "mse" else 0.5) * amax and lo < 0
    if symmetric:
        assert lo == -hi


def test_mse_choice_beats_minmax_in_measured_error():
    """Laplace(1) at 8 bits: the MSE-optimal clip is ~9.9 (Banner et al. 2019), below max."""
    x = np.random.default_rng(3).laplace(size=100_000).astype(np.float32)
    h = _hist(x)

    def err(r):
        s, _ = qparams(*r, True)
        return np.mean((np.clip(np.rint(x / s), -127, 127) * s - x) ** 2)
    lo, hi = choose_range(h, "mse", True)
    assert 9 < hi < 11 and err((lo, hi)) < 0.9 * err(choose_range(h, "minmax", True))


def test_uniform_is_not_clipped_much_by_mse_or_kl():
    x = np.random.default_rng(4).uniform(-1, 1, 100_000)
    for observer in ("mse", "kl"):
        assert choose_range(_hist(x), observer, True)[1] > 0.9


def test_relu_outputs_with_zero_point_use_the_full_code_range():
    x = np.maximum(np.random.default_rng(5).standard_normal(10_000), 0)
    lo, hi = choose_range(_hist(x), "minmax", False)
    s, zp = qparams(lo, hi, False)
    assert lo == 0 and zp == -128 and abs(s - hi / 255) < 1e-6 * hi


def test_all_zero_and_empty_inputs():
    h = _hist(np.zeros(10), np.zeros(0))
    for observer in ("minmax", "percentile", "mse", "kl"):
        assert choose_range(h, observer, True) == (0.0, 0.0)
    assert qparams(0.0, 0.0, True) == (1.0, 0)
