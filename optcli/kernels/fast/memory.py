"""Keep freed buffers inside the process, so a run's outputs reuse the last run's memory (glibc).

glibc serves large allocations with fresh mmap()s and hands freed memory above a trim threshold
back to the OS. Every kernel returns a fresh array, so each run of a model then page-faults
(and the kernel zero-fills) all its activations again: measured, LeNet-5 at batch 256 ran 2.9x
onnxruntime's time with the defaults and 2.0x with freed memory kept; BERT at batch 1, 1.55x
and 1.47x. Raising both thresholds makes buffers up to MMAP_THRESHOLD come from the heap and
stay there once freed, ready for the next allocation of that size.

This is a process-wide setting, made once, by the first fast `Runtime`. The cost: up to
TRIM_THRESHOLD of freed heap stays resident instead of going back to the OS. Elsewhere than
glibc (musl, macOS, Windows) nothing is changed.
"""

from __future__ import annotations

import ctypes

MMAP_THRESHOLD = 64 << 20     # bytes: activations up to this size are recycled
TRIM_THRESHOLD = 256 << 20    # bytes of freed heap top kept before any is returned
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3    # mallopt parameter numbers (malloc.h)
_done: bool | None = None


def keep_freed_memory() -> bool:
    """Set glibc's mmap and trim thresholds once per process; True if they were set. Never
    raises: on any other C library, or on any failure, the allocator is left alone."""
    global _done
    if _done is None:
        _done = _set_thresholds()
    return _done


def _set_thresholds() -> bool:
    """mallopt(M_MMAP_THRESHOLD), mallopt(M_TRIM_THRESHOLD) through ctypes, on glibc only."""
    try:
        libc = ctypes.CDLL(None)
        if not hasattr(libc, "gnu_get_libc_version"):      # not glibc
            return False
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
                    and libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    except Exception:           # no C library reachable through ctypes: leave it alone
        return False
