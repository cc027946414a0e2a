"""Timing of executors against the serial baseline, each call under its own BLAS thread limit
(set before the clock starts: a thread-pool executor and the baseline need different limits
in one process); the ratio reported is the ratio of medians.

- `interleaved`: A, B, C, A, B, C … call by call, so drifts in load hit every side alike;
- `blocked`: a block of calls of each side in turn, round after round, with a pause before
  each block. After a multi-threaded BLAS call OpenBLAS's idle threads spin on the cores
  for a while (~0.1 s); interleaved call by call, that spinning takes the cores a worker
  process or a worker thread of the next side needs, a cost no real run of that side pays.
  The planner measures in blocks (SETTLE_S pause)."""

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
    return _timed(sides, [(i, r >= warmup, 0.0) for r in range(warmup + repeats)
                          for i in range(len(sides))])


SETTLE_S = 0.25              # longer than OpenBLAS's spin before its threads sleep


def blocked(sides: list[tuple[Callable[[], Any], int | None]], repeats: int = 10,
            rounds: int = 2, warmup: int = 1, settle: float = SETTLE_S) -> list[list[float]]:
    """Seconds of each call; each round runs warmup + repeats // rounds calls of every side
    in turn, after `settle` seconds of quiet."""
    per = max(1, repeats // rounds)
    return _timed(sides, [(i, r >= warmup, settle if r == 0 else 0.0) for _ in range(rounds)
                          for i in range(len(sides)) for r in range(warmup + per)])


def _timed(sides: list[tuple[Callable[[], Any], int | None]],
           order: list[tuple[int, bool, float]]) -> list[list[float]]:
    """Call the sides in `order`: (side, keep its time, seconds to sleep first)."""
    lim = Limits()
    samples: list[list[float]] = [[] for _ in sides]
    try:
        for i, keep, pause in order:
            fn, threads = sides[i]
            lim.set(threads)
            if pause:
                time.sleep(pause)
            t0 = time.perf_counter()
            fn()
            if keep:
                samples[i].append(time.perf_counter() - t0)
    finally:
        lim.restore()
    return samples


def median(xs: list[float]) -> float:
    return float(np.median(xs))


def cv(xs: list[float]) -> float:
    a = np.asarray(xs)
    return float(a.std() / a.mean()) if a.size and a.mean() else 0.0
