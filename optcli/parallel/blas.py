"""BLAS thread limits for workers: a limit held for an executor's lifetime in this process
(threadpoolctl), and the environment a child process must start with so its BLAS never
creates more threads than it is given (read once, when NumPy loads OpenBLAS/MKL)."""

from __future__ import annotations

import contextlib
import os
from typing import Iterator

BLAS_ENV = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
            "BLIS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


class BlasLimit:
    """threadpool_limits(n) from construction until restore(); None leaves BLAS alone."""

    def __init__(self, n: int | None):
        self._limiter = None
        if n is not None:
            from threadpoolctl import threadpool_limits
            self._limiter = threadpool_limits(limits=n, user_api="blas")

    def restore(self) -> None:
        if self._limiter is not None:
            self._limiter.restore_original_limits()
            self._limiter = None


@contextlib.contextmanager
def child_blas_env(threads: int) -> Iterator[None]:
    """os.environ with every BLAS thread variable = threads while children are started
    (spawned children copy the environment at start), restored afterwards."""
    saved = {k: os.environ.get(k) for k in BLAS_ENV}
    os.environ.update({k: str(threads) for k in BLAS_ENV})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
