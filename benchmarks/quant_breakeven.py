"""Where packed `linear` beats float32 BLAS: the speed-ups in optcli/kernels/quantized/decision.py.

    pip install -e '.[fast]'
    python benchmarks/quant_breakeven.py                       # 384², 1024², 4096²; both backends
    python benchmarks/quant_breakeven.py --sizes 512 --backends numpy --repeats 9 --threads 1

For each square weight W[n, n], width (8 bits: the int8 layout, a scale per output channel;
4 bits: the packed layout, groups of 128) and batch (1 and 256), float32 `x @ W.T` (W laid out
as the runtime lays it out) and the packed kernel are timed interleaved in one process
(optcli.bench.measure), each side cycling through copies of its weight (>= 96 MB) so that
every call streams it from memory as a model's layers do. The figure is float32 time / packed
time, fastest run of each side (the machine is shared: a busy neighbour stalls 2-thread
kernels for milliseconds, which medians would measure instead of the kernels); > 1: packed
faster. Printed as the SPEEDUP literal of decision.py.
"""

from __future__ import annotations

import argparse
import os

import numpy as np
from threadpoolctl import threadpool_limits

from optcli.bench import measure
from optcli.kernels.fast.memory import keep_freed_memory
from optcli.kernels.quantized import PackedWeight, default_backend, linear, warm_up
from optcli.steps.quantize import quantize_int8

STREAM_BYTES = 96 << 20
BATCHES = (1, 256)


def packed_weight(n: int, bits: int, rng) -> PackedWeight:
    """A random W[n, n]: 8 bits in the int8 layout, 4 bits packed with groups of 128."""
    if bits == 8:
        t = quantize_int8(rng.standard_normal((n, n)).astype(np.float32), 0, True)
        return PackedWeight.from_int8(t.codes, t.scale, None)
    u = rng.integers(0, 16, (n, n), dtype=np.uint8)
    g = min(128, n)
    return PackedWeight.from_arrays((u[:, 0::2] << 4) | u[:, 1::2],
                                    rng.random((n, -(-n // g)), dtype=np.float32), None, 4, g, n)


def ratio(n: int, bits: int, batch: int, backend: str, repeats: int, rng) -> float:
    """float32 / packed fastest time for W[n, n] at `batch`, both streamed from memory."""
    dense = [np.ascontiguousarray(rng.standard_normal((n, n), dtype=np.float32).T).T
             for _ in range(max(2, STREAM_BYTES // (4 * n * n)))]
    one = packed_weight(n, bits, rng)
    packed = [one] + [packed_weight(n, bits, rng)
                      for _ in range(max(1, STREAM_BYTES // one.nbytes - 1))]
    x = rng.standard_normal((batch, n)).astype(np.float32)
    i = {"d": 0, "p": 0}
    def f32():
        i["d"] = (i["d"] + 1) % len(dense)
        return x @ dense[i["d"]].T
    def pk():
        i["p"] = (i["p"] + 1) % len(packed)
        return linear(x, packed[i["p"]], None, backend)
    t_dense, t_packed = measure([f32, pk], batch, repeats=repeats, warmup=2)
    return min(t_dense.samples_ms) / min(t_packed.samples_ms)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="384,1024,4096")
    ap.add_argument("--backends", default="numba,numpy")
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--threads", type=int, default=0, help="BLAS threads (0: BLAS default)")
    args = ap.parse_args()
    backends = [b for b in args.backends.split(",") if b != "numba" or
                default_backend() == "numba"]
    warm_up(default_backend())
    keep_freed_memory()                  # as the runtime does: freed buffers are reused
    print(f"# load average: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    rng = np.random.default_rng(0)
    with threadpool_limits(args.threads or None, user_api="blas"):
        print("SPEEDUP = {")
        for backend in backends:
            print(f'    "{backend}": {{')
            for bits in (8, 4):
                print(f"        {bits}: {{")
                for n in map(int, args.sizes.split(",")):
                    reps = args.repeats if n < 4096 else max(5, args.repeats // 2)
                    cells = ", ".join(f"{b}: {ratio(n, bits, b, backend, reps, rng):.2f}"
                                      for b in BATCHES)
                    print(f"            {n}: {{{cells}}},", flush=True)
                print("        },")
            print("    },")
        print("}")


if __name__ == "__main__":
    main()
