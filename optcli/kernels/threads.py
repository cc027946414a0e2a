"""Threads for the kernels that BLAS does not run: row blocks handed out to a small pool.

Used by the packed quantized kernels (kernels/quantized/) and the CSR `linear`
(kernels/sparse.py); both size their work by `blas_threads()`, the limit dense kernels get.

The numba kernels release the GIL (nogil), so Python threads run them in parallel. Threads
(the caller is one of them) take the next unclaimed block until none is left: when another
process holds a core, the threads that do run take over the blocks of the one that does not,
where a static split (or numba's own parallel loops, tried first) would wait for it, which
cost milliseconds a call on this shared machine. Idle pool threads sleep, not spin.
"""

from __future__ import annotations

import itertools
import os
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

BLOCKS_PER_THREAD = 4       # enough to rebalance when a thread is held up
MIN_BLOCK_ROWS = 32
_POOL: ThreadPoolExecutor | None = None
_getters: list[Callable[[], int]] | None = None


def row_spans(rows: int, threads: int) -> list[tuple[int, int]]:
    """[r0, r1) blocks covering rows: BLOCKS_PER_THREAD a thread, >= MIN_BLOCK_ROWS rows each."""
    n = max(1, min(threads * BLOCKS_PER_THREAD if threads > 1 else 1, rows // MIN_BLOCK_ROWS))
    cuts = [rows * i // n for i in range(n + 1)]
    return list(zip(cuts[:-1], cuts[1:]))


def run_blocks(fn: Callable[[int], object], n_blocks: int, threads: int) -> None:
    """fn(i) for every i < n_blocks, on up to `threads` threads including the caller."""
    if threads <= 1 or n_blocks <= 1:
        for i in range(n_blocks):
            fn(i)
        return
    counter = itertools.count()           # next() on it is atomic under the GIL

    def work() -> None:
        while (i := next(counter)) < n_blocks:
            fn(i)
    futures = [_pool().submit(work) for _ in range(min(threads, n_blocks) - 1)]
    work()
    for f in futures:
        f.result()


def _pool() -> ThreadPoolExecutor:
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max(1, (os.cpu_count() or 2) - 1),
                                   thread_name_prefix="optcli-kernels")
    return _POOL


def blas_threads() -> int:
    """The BLAS thread limit now (~0.3 us a call: each BLAS's get_num_threads), at least 1."""
    global _getters
    if _getters is None:
        try:
            from threadpoolctl import ThreadpoolController
            _getters = [lib.get_num_threads for lib in
                        ThreadpoolController().select(user_api="blas").lib_controllers]
        except Exception:      # unknown: one thread, never oversubscribe
            _getters = []
    counts = [g() or 1 for g in _getters]
    return max(1, min(counts)) if counts else 1
