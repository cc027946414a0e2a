"""BLAS thread control for benchmarks (`--threads N`), through threadpoolctl, which changes
the limit of already-loaded BLAS libraries at run time (environment variables would only work
before NumPy is imported)."""

from __future__ import annotations

import contextlib
from typing import Iterator

from optcli.errors import InputError


@contextlib.contextmanager
def blas_threads(n: int | None) -> Iterator[None]:
    if n is None:
        yield
        return
    if n < 1:
        raise InputError(f"--threads must be >= 1, got {n}")
    from threadpoolctl import threadpool_limits
    with threadpool_limits(limits=n, user_api="blas"):
        yield
