"""Calibration observers: choose the int8 range of a layer's input from a streamed histogram.

    minmax      the observed [min, max] (exact, not from the histogram)
    percentile  the p-th percentile of |x| (symmetric) or the (100-p)-th / p-th of x
    mse         the clipping range minimising the expected quantization MSE: rounding noise
                delta^2 / 12 per value inside the range plus the exact squared clipping error
                of the values outside it (the analytic model of ACIQ, Banner et al. 2019)
    kl          TensorRT's entropy calibration (Migacz 2017, "8-bit inference with TensorRT"):
                the threshold whose 128-level quantized histogram is closest in KL divergence
                to the reference histogram with its outliers clipped into the last bin

Memory is bounded: `Histogram` keeps 2 x 2048 bins whatever the calibration set's size; the
bin width doubles (adjacent bins merged) whenever a batch exceeds the covered range, as in
PyTorch's HistogramObserver. Symmetric ranges come from the folded |x| histogram; asymmetric
ones shrink [min(min, 0), max(max, 0)] by one common factor (a 1-D search, the fraction kept).
"""

from __future__ import annotations

import math

import numpy as np

BINS = 2048                    # per sign; TensorRT uses 2048 bins for 128 quantized levels
GRID = 512                     # candidate shrink factors of the asymmetric mse/kl searches
OBSERVERS = ("minmax", "percentile", "mse", "kl")


class Histogram:
    """Streamed statistics of one activation: exact min/max and counts of x >= 0 (`pos`) and
    of -x > 0 (`neg`) in BINS bins of `width` each, bin k covering [k*width, (k+1)*width)."""

    def __init__(self) -> None:
        self.lo, self.hi, self.width = math.inf, -math.inf, 0.0
        self.zeros = 0                         # exact zeros (in pos[0]); see _kl_symmetric
        self.pos = np.zeros(BINS, np.int64)
        self.neg = np.zeros(BINS, np.int64)

    def add(self, x: np.ndarray) -> None:
        x = np.asarray(x, np.float32).reshape(-1)
        if not x.size:
            return
        lo, hi = float(x.min()), float(x.max())
        self.zeros += int(x.size - np.count_nonzero(x))
        self.lo, self.hi = min(self.lo, lo), max(self.hi, hi)
        amax = max(-lo, hi)
        if self.width == 0.0:
            self.width = amax / BINS if amax > 0 else 0.0
        while self.width and amax > self.width * BINS:
            self._double()
        if self.width == 0.0:                  # everything so far is exactly zero
            self.pos[0] += x.size
            return
        for counts, v in ((self.pos, x[x >= 0]), (self.neg, -x[x < 0])):
            idx = np.minimum((v / np.float32(self.width)).astype(np.int64), BINS - 1)
            counts += np.bincount(idx, minlength=BINS)

    def _double(self) -> None:
        """Merge bin pairs (2k, 2k + 1) -> k: same counts, twice the width, half the bins."""
        for counts in (self.pos, self.neg):
            counts[:BINS // 2] = counts.reshape(-1, 2).sum(axis=1)
            counts[BINS // 2:] = 0
        self.width *= 2

    @property
    def count(self) -> int:
        return int(self.pos.sum() + self.neg.sum())

    def signed(self) -> tuple[np.ndarray, np.ndarray]:
        """(counts [2*BINS], bin centres [2*BINS]) over [-BINS*width, BINS*width)."""
        counts = np.concatenate([self.neg[::-1], self.pos]).astype(np.float64)
        centres = (np.arange(-BINS, BINS) + 0.5) * self.width
        return counts, centres


def choose_range(h: Histogram, observer: str, symmetric: bool,
                 percentile: float = 99.99) -> tuple[float, float]:
    """The [lo, hi] range to quantize to (lo = -hi when symmetric); contains 0."""
    lo, hi = min(h.lo, 0.0), max(h.hi, 0.0)
    if h.count == 0 or h.width == 0.0 or observer == "minmax":
        t = max(-lo, hi)
        return (-t, t) if symmetric else (lo, hi)
    if observer == "percentile":
        return _percentile(h, symmetric, percentile, lo, hi)
    if observer == "mse":
        return _mse(h, symmetric, lo, hi)
    if observer == "kl":
        return _kl_symmetric(h) if symmetric else _kl_asymmetric(h, lo, hi)
    raise ValueError(f"unknown observer {observer!r}; valid: {', '.join(OBSERVERS)}")


def qparams(lo: float, hi: float, symmetric: bool) -> tuple[float, int]:
    """(scale, zero point) of int8 codes for [lo, hi]: symmetric s = t / 127, z = 0; else
    s = (hi - lo) / 255 and z = round(-128 - lo / s), so 0.0 is exact. The scale is rounded
    to float32, the precision the kernels compute with."""
    if symmetric:
        t = max(-lo, hi)
        return float(np.float32(t / 127)) if t > 0 else 1.0, 0
    if hi - lo <= 0:
        return 1.0, 0
    s = float(np.float32((hi - lo) / 255))
    return s, int(np.clip(np.rint(-128 - lo / s), -128, 127))


def _quantile(counts: np.ndarray, edges: np.ndarray, q: float) -> float:
    """Value below which a fraction q of the counts lies, linear inside the bin."""
    cum = np.cumsum(counts)
    target = q * cum[-1]
    k = int(np.searchsorted(cum, target, side="left"))
    k = min(k, len(counts) - 1)
    before = cum[k - 1] if k else 0.0
    frac = (target - before) / counts[k] if counts[k] else 1.0
    return float(edges[k] + frac * (edges[k + 1] - edges[k]))


def _percentile(h: Histogram, symmetric: bool, p: float, lo: float, hi: float):
    if symmetric:
        edges = np.arange(BINS + 1) * h.width
        t = min(_quantile((h.pos + h.neg).astype(np.float64), edges, p / 100), max(-lo, hi))
        return -t, t
    counts, _ = h.signed()
    edges = np.arange(-BINS, BINS + 1) * h.width
    return (max(min(_quantile(counts, edges, 1 - p / 100), 0.0), lo),
            min(max(_quantile(counts, edges, p / 100), 0.0), hi))


def _mse(h: Histogram, symmetric: bool, lo: float, hi: float) -> tuple[float, float]:
    """Expected squared error for each candidate range f * [lo, hi] (f = 1/GRID .. 1)."""
    counts, c = h.signed()
    if symmetric:
        lo, hi = -max(-lo, hi), max(-lo, hi)
    f = np.arange(1, GRID + 1)[:, None] / GRID                       # [GRID, 1]
    a, b = f * lo, f * hi                                              # candidate ranges
    delta = (b - a) / (254 if symmetric else 255)                      # code step
    inside = ((c >= a) & (c <= b)) * counts                            # [GRID, 2*BINS]
    clip = np.where(c < a, c - a, 0.0) ** 2 + np.where(c > b, c - b, 0.0) ** 2
    err = inside.sum(axis=1) * delta[:, 0] ** 2 / 12 + (clip * counts).sum(axis=1)
    k = int(np.argmin(err))
    return float(a[k, 0]), float(b[k, 0])


def _kl(ref: np.ndarray, sliced: np.ndarray, levels: int) -> float:
    """KL(P || Q): P = the reference bins (outliers folded in), Q = `sliced` merged into
    `levels` groups and spread evenly back over each group's non-empty bins."""
    n = len(sliced)
    starts = (np.arange(levels) * n) // levels                          # group starts
    totals = np.add.reduceat(sliced, starts)
    nonzero = np.add.reduceat((sliced > 0).astype(np.float64), starts)
    group = np.repeat(np.arange(levels), np.diff(np.append(starts, n)))
    q = np.where(sliced > 0, (totals / np.maximum(nonzero, 1))[group], 0.0)
    p = ref / ref.sum()
    q = q / max(q.sum(), 1e-300)
    m = p > 0
    return float(np.sum(p[m] * np.log(p[m] / np.maximum(q[m], 1e-12))))


def _kl_symmetric(h: Histogram, levels: int = 128) -> tuple[float, float]:
    """TensorRT: the threshold i bins wide (i = 128 .. BINS) with least KL over |x|. Exact
    zeros are left out: every range represents them exactly, and after a ReLU their spike
    (half the values) would otherwise dominate P and favour needlessly small thresholds."""
    folded = (h.pos + h.neg).astype(np.float64)
    folded[0] -= h.zeros
    if not folded.any():
        return 0.0, 0.0
    last = int(np.flatnonzero(folded).max()) + 1
    if last <= levels:
        t = max(-h.lo, h.hi)
        return -t, t
    best, best_i = math.inf, last
    for i in range(levels, last + 1):
        ref = folded[:i].copy()
        ref[-1] += folded[i:].sum()                                    # outliers clipped in
        d = _kl(ref, folded[:i], levels)
        if d < best:
            best, best_i = d, i
    t = min((best_i + 0.5) * h.width, max(-h.lo, h.hi))
    return -t, t


def _kl_asymmetric(h: Histogram, lo: float, hi: float, levels: int = 255):
    """The shrink factor f of [lo, hi] whose 255-level quantized histogram has least KL."""
    counts, _ = h.signed()
    counts[BINS] -= h.zeros                                    # as in _kl_symmetric
    n_neg, n_pos = math.ceil(-lo / h.width), math.ceil(hi / h.width)
    best, best_f = math.inf, 1.0
    for f in np.arange(1, GRID + 1) / GRID:
        a, b = BINS - math.ceil(f * n_neg), BINS + math.ceil(f * n_pos)
        if b - a < levels:
            continue
        ref = counts[a:b].copy()
        ref[0] += counts[:a].sum()
        ref[-1] += counts[b:].sum()
        d = _kl(ref, counts[a:b], levels)
        if d < best:
            best, best_f = d, f
    return float(best_f * lo), float(best_f * hi)
