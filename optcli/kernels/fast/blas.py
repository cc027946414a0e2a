"""How many threads BLAS may use right now, asked per call (~0.3 us, through threadpoolctl).

Kernels keep each GEMM under OpenBLAS's threading threshold when BLAS may use several threads:
a 2-thread GEMM of a few microseconds of work costs a thread handoff, and milliseconds when
the other core is busy. With BLAS limited to one thread (`--threads 1`, threadpoolctl) that
cap only costs Python overhead per block, so the kernels ask, and size blocks for cache alone.
The limit can change at any time (`threadpool_limits` is a context manager), hence per call.
"""

from __future__ import annotations

from typing import Callable

_getters: list[Callable[[], int]] | None = None


def _find_getters() -> list[Callable[[], int]]:
    """get_num_threads of every loaded BLAS; empty when threadpoolctl cannot tell."""
    try:
        from threadpoolctl import ThreadpoolController
        libs = ThreadpoolController().select(user_api="blas").lib_controllers
        return [lib.get_num_threads for lib in libs]
    except Exception:       # any failure means "unknown": callers then stay conservative
        return []


def single_threaded() -> bool:
    """True when every loaded BLAS is limited to one thread (False when unknown)."""
    global _getters
    if _getters is None:
        _getters = _find_getters()      # once per process: scanning libraries takes ~1.5 ms
    try:
        return bool(_getters) and all((g() or 2) == 1 for g in _getters)
    except Exception:
        return False
