"""Latency measurement: warm-up, repeats, robust statistics, interleaved comparisons.

Machines are noisy, so a comparison is only trusted when both sides are measured in the same
process and interleaved (A, B, A, B, ...): drifts in clock speed or background load then hit
both alike. The ratio reported is the ratio of medians.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np


@dataclass(frozen=True)
class Timing:
    samples_ms: tuple[float, ...]
    batch: int

    def stat(self, q: float) -> float:
        return float(np.percentile(self.samples_ms, q))

    def to_dict(self) -> dict[str, Any]:
        a = np.asarray(self.samples_ms)
        median = float(np.median(a))
        return {
            "batch": self.batch, "repeats": len(a), "min_ms": float(a.min()),
            "median_ms": median, "p90_ms": self.stat(90), "p99_ms": self.stat(99),
            "mean_ms": float(a.mean()), "cv": float(a.std() / a.mean()) if a.mean() else 0.0,
            "throughput_per_s": self.batch * 1000.0 / median if median else 0.0,
        }

    @property
    def median_ms(self) -> float:
        return float(np.median(self.samples_ms))


def measure(fns: list[Callable[[], Any]], batch: int, repeats: int = 30,
            warmup: int = 3) -> list[Timing]:
    """Time each fn `repeats` times, interleaved round by round, after `warmup` untimed rounds."""
    for _ in range(warmup):
        for fn in fns:
            fn()
    samples: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            t0 = time.perf_counter()
            fn()
            samples[i].append((time.perf_counter() - t0) * 1000.0)
    return [Timing(tuple(s), batch) for s in samples]


def profile_ops(run: Callable[[dict[str, float]], Any], repeats: int) -> dict[str, float]:
    """Median milliseconds per op type over `repeats` calls of run(profile_dict), after one
    untimed warm-up call (e.g. `lambda p: runtime.run(feeds, profile=p)`)."""
    run({})
    runs = []
    for _ in range(repeats):
        ms: dict[str, float] = {}
        run(ms)
        runs.append(ms)
    return {op: float(np.median([r[op] for r in runs])) for op in runs[0]}
