"""Where the packed `linear` kernel beats float32 BLAS: speed-ups measured here.

Measured by `benchmarks/quant_breakeven.py --repeats 9` (BLAS default threads, i.e. 2) on the
shared 2-core AMD EPYC VM (OpenBLAS, NumPy 2.4.6, numba 0.68.1): the numpy rows on 2026-11-29
(load average 1.5-1.7), the numba rows re-measured later that day (load 0.6-0.9, after 4- and
2-bit codes moved to float32 lanes, jit.py): square weights W[n, n] (8 bits: int8 codes, a
scale per output channel; 4 bits: packed, groups of 128), float32 time / packed time, fastest
of the interleaved runs of each side, every call streaming its weight from memory. > 1: packed
is faster. At batch 1 the numba kernel wins for int8 (reading a quarter of the bytes) and for 4
bits (interleaved with BLAS calls, as here, 1.5x; timed alone, quant_kernels_isolated.py, ~2x);
at batch 256 writing decoded float32 tiles for BLAS costs 10-25 % more than float32 GEMM
reading its weight, everywhere; the NumPy fallback loses at every size.

The runtime's weights="auto" runs a quantized linear layer packed only where the entry for its
size, width and backend is above 1 at batch 1 AND batch 256, so packing is never the slower
choice there: with these figures, nowhere (auto keeps decoding quantized layers to float32
once). weights="compact" runs them packed whenever a packed kernel exists.
"""

from __future__ import annotations

# backend -> bits -> weight side n -> {batch: float32 time / packed time}
SPEEDUP: dict[str, dict[int, dict[int, dict[int, float]]]] = {
    "numba": {
        8: {384: {1: 1.99, 256: 0.82}, 1024: {1: 1.00, 256: 0.81},
            4096: {1: 1.48, 256: 0.83}},
        4: {384: {1: 1.98, 256: 0.85}, 1024: {1: 1.09, 256: 0.82},
            4096: {1: 1.55, 256: 0.81}},
    },
    "numpy": {
        8: {384: {1: 0.67, 256: 0.84}, 1024: {1: 0.37, 256: 0.84},
            4096: {1: 0.22, 256: 0.81}},
        4: {384: {1: 0.07, 256: 0.44}, 1024: {1: 0.03, 256: 0.40},
            4096: {1: 0.02, 256: 0.42}},
    },
}
BATCHES = (1, 256)


def speedup(rows: int, cols: int, bits: int, backend: str, batch: int) -> float:
    """The measured speed-up of the entry with the largest n*n <= rows*cols (sizes between
    measurements get the smaller layer's figure); 0 where nothing was measured."""
    table = SPEEDUP.get(backend, {}).get(bits, {})
    fitting = [n for n in table if n * n <= rows * cols]
    return table[max(fitting)][batch] if fitting else 0.0


def packed_is_faster(rows: int, cols: int, bits: int, backend: str) -> bool:
    """True when the packed kernel was measured faster than float32 at batch 1 and 256."""
    return all(speedup(rows, cols, bits, backend, b) > 1.0 for b in BATCHES)
