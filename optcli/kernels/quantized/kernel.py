"""`linear` over a PackedWeight: the runtime's kernel for the "packed" form.

Two backends compute the same thing: "numba" (kernels/quantized/jit.py: rows unpacked in
registers or L1 and dotted there up to GEMV_MAX_BATCH inputs, decoded tiles + BLAS above)
and "numpy" (tiled decode + BLAS at every batch, kernels/quantized/tiles.py), used when numba
is not installed. Both run on as many threads as BLAS may use at call time (threadpoolctl's
limit, what dense kernels get; threads.py), and layers below PARALLEL_MIN weights on one
thread (handing a block to a pool thread costs tens of microseconds, more than such a layer's
whole product at batch 1). Measured on 2 cores: right after a BLAS call, OpenBLAS's idle
threads spin for a while and take the second core, so a second packed thread gains little in
a model that also runs BLAS; it helps where BLAS is idle.
"""

from __future__ import annotations

import functools
import importlib.util

import numpy as np

from optcli.kernels.quantized import tiles
from optcli.kernels.quantized.layout import PackedWeight
from optcli.kernels.reference.contract import check_linear
from optcli.kernels.threads import blas_threads

GEMV_MAX_BATCH = 32         # numba: row kernels up to this batch, decoded tiles + BLAS above
                            # (4096^2, 2 threads, ms rows/tiles: int8 16: 7.8-13.6/16.0,
                            # 32: 15.3-15.8/15.1-17.7, 64: 29.3/25.0; 4-bit 32: 15.4/18.8)
PARALLEL_MIN = 1 << 18      # weights; smaller layers run on one thread
BACKENDS = ("numba", "numpy")


@functools.lru_cache(maxsize=None)
def default_backend() -> str:
    """"numba" when it is installed, else "numpy" (looked up, not imported: importing numba
    takes 0.4 s, paid only once a packed weight is prepared)."""
    try:
        return "numba" if importlib.util.find_spec("numba") is not None else "numpy"
    except ValueError:             # sys.modules["numba"] is None: numba blocked
        return "numpy"


def linear_packed(x: np.ndarray, weight: PackedWeight,
                  bias: np.ndarray | None = None) -> np.ndarray:
    """y[..., out] = x[..., in] @ W[out, in].T + bias, W packed (the runtime's kernel)."""
    return linear(x, weight, bias, default_backend())


def linear(x: np.ndarray, weight: PackedWeight, bias: np.ndarray | None = None,
           backend: str = "numpy") -> np.ndarray:
    """The same product with an explicit backend ("numba" or "numpy")."""
    check_linear(x, weight, bias)
    x2 = np.ascontiguousarray(x.reshape(-1, x.shape[-1]), dtype=np.float32)   # [B, in]
    rows, cols = weight.shape
    threads = blas_threads() if rows * cols >= PARALLEL_MIN else 1
    if backend == "numba":
        from optcli.kernels.quantized import jit
        y = (jit.linear_rows(x2, weight, threads) if x2.shape[0] <= GEMV_MAX_BATCH
             else jit.linear_tiles(x2, weight, threads))
    elif backend == "numpy":
        y = tiles.linear_numpy(x2, weight)
    else:
        raise ValueError(f"packed linear backend {backend!r}; valid: {', '.join(BACKENDS)}")
    if bias is not None:
        y += bias
    return y.reshape(*x.shape[:-1], rows)


@functools.lru_cache(maxsize=None)
def warm_up(backend: str) -> None:
    """Compile (or load from the on-disk cache: ~1 s in all) every numba kernel for both code
    layouts, once per process, so that no timed call pays for it. A no-op for "numpy"."""
    if backend != "numba":
        return
    from optcli.kernels.quantized import jit
    for w in (PackedWeight.from_arrays(np.zeros((2, 8), np.uint8), np.ones((2, 1), np.float32),
                                       np.zeros((2, 1), np.uint8), 4, 16, 16),
              PackedWeight.from_arrays(np.zeros((2, 6), np.uint8), np.ones((2, 1), np.float32),
                                       np.zeros((2, 1), np.uint8), 3, 16, 16),
              PackedWeight.from_int8(np.zeros((2, 16), np.int8), np.ones(2, np.float32),
                                     np.zeros(2, np.int8))):
        for batch in (1, 2, GEMV_MAX_BATCH + 1):
            x = np.zeros((batch, 16), np.float32)
            jit.linear_rows(x, w, 1)
            jit.linear_tiles(x, w, 1)
