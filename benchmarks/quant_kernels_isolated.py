"""The 4096 x 4096 packed `linear` against float32, each side alone in its own process.

    python benchmarks/quant_kernels_isolated.py
    python benchmarks/quant_kernels_isolated.py --batches 1 --repeats 100

`quant_kernels.py` interleaves the sides call by call in one process; there, after every
float32 product OpenBLAS's second thread keeps spinning on the other core and slows the next
packed call (whose numba kernel wants both cores). A model whose linear layers all run packed
makes no float32 BLAS calls between them, so this script times each side in a fresh process
(same weights, cycling through >= 96 MB of copies so every call streams from memory, see
quant_kernels.py): float32 `x @ W.T`, and the numba kernels on 8-bit (per-channel int8) and
4-bit and 3-bit (groups of 128) weights. Needs the `fast` extra (numba).
Measured 2026-11-29, 2-core VM, 2 threads, eight runs at batch 1: 4-bit 1.74-3.08x faster than
float32 (median 2.3; float32 2.15-2.36 ms), int8 1.63-2.44x; batch 4 1.8x; batch 16 0.81-0.92x;
batch 256 0.67-0.82x (float32 ~47 ms). The issue's batch-1 target (2x) is met by 4 bits in
most runs; the batch-256 one (not slower) is not (benchmarks/README.md says why).
"""

from __future__ import annotations

import argparse

from fresh_process import median_ms

SETUP = """
from quant_kernels import cycling, weights
from optcli.kernels.fast.memory import keep_freed_memory
from optcli.kernels.quantized import linear, warm_up
rng = np.random.default_rng(0)
keep_freed_memory()
ws, _ = weights({kind!r}, rng)
x = rng.standard_normal(({batch}, 4096)).astype(np.float32)
if {kind!r} == "float32":
    f = cycling(lambda w: x @ w.T, ws)
else:
    warm_up("numba")
    f = cycling(lambda w: linear(x, w, None, "numba"), ws)
"""


def side(kind: str, batch: int, repeats: int) -> float:
    return median_ms(SETUP.format(kind=kind, batch=batch), repeats)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", default="1,256")
    ap.add_argument("--repeats", type=int, default=60)
    args = ap.parse_args()
    print("| batch | float32 ms | int8 ms (×) | 4-bit g128 ms (×) | 3-bit g128 ms (×) |\n"
          "|---|---|---|---|---|")
    for batch in map(int, args.batches.split(",")):
        reps = args.repeats if batch < 64 else max(10, args.repeats // 4)
        f32, *packed = (side(k, batch, reps) for k in ("float32", "int8", "int4", "int3"))
        print(f"| {batch} | {f32:.2f} | " + " | ".join(f"{t:.2f} ({f32 / t:.2f}×)"
                                                      for t in packed) + " |", flush=True)


if __name__ == "__main__":
    main()
