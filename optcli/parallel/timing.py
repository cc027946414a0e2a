"""Interleaved timing of executors against the serial baseline, each call under its own BLAS
thread limit (set before the clock starts: a thread-pool executor and the baseline need
different limits in one process). Rounds alternate A, B, C, A, B, C … so drifts in load hit
every side alike; the ratio reported is the ratio of medians."""

from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np


class Limits:
    """Switch BLAS thread limits cheaply (one library scan, at construction)."""

    def __init__(self) -> None:
        from threadpoolctl import ThreadpoolController
        self._libs = ThreadpoolController().select(user_api="blas").lib_controllers
        self._original = [lib.num_threads for lib in self._libs]
        self._current: int | None = None

    def set(self, n: int | None) -> None:
        if n is not None and n != self._current:
            for lib in self._libs:
                lib.set_num_threads(n)
            self._current = n

    def restore(self) -> None:
        for lib, n in zip(self._libs, self._original):
            lib.set_num_threads(n)


def interleaved(sides: list[tuple[Callable[[], Any], int | None]], repeats: int = 10,
                warmup: int = 2) -> list[list[float]]:
    """Seconds of each call; sides = (fn, BLAS threads for this call or None)."""
    lim = Limits()
    samples: list[list[float]] = [[] for _ in sides]
    try:
        for r in range(warmup + repeats):
            for i, (fn, threads) in enumerate(sides):
                lim.set(threads)
                t0 = time.perf_counter()
                fn()
                if r >= warmup:
                    samples[i].append(time.perf_counter() - t0)
    finally:
        lim.restore()
    return samples


def median(xs: list[float]) -> float:
    return float(np.median(xs))


def cv(xs: list[float]) -> float:
    a = np.asarray(xs)
    return float(a.std() / a.mean()) if a.size and a.mean() else 0.0
