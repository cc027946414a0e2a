"""A 4096 x 4096 W8A8 `linear` (int8 weights per channel, activations quantized per token at
run time) against float32 NumPy, each side alone in its own process.

    pip install -e '.[ort]'                        # onnx + onnxruntime: the int8 GEMM
    python benchmarks/w8a8_kernels.py
    python benchmarks/w8a8_kernels.py --batches 1,256 --repeats 40

Sides: float32 `x @ W.T` (W laid out as the runtime lays it out); optcli's W8A8 kernel
(kernels/fast/w8a8.py) on onnxruntime's MatMulInteger (kernels/w8a8_ort.py), and on the NumPy
tier (exact float32 sgemm chunks over the int8 codes). Every side cycles through copies of
its weight (>= 96 MB) so each call streams it from memory, as in a model whose layers do not
fit the 32 MB L3; the activation quantization and the output scaling are inside the timed
call. Both W8A8 sides compute the same integer sums (tests/activations/test_w8a8_kernels.py
checks them bit for bit), so the figure is speed only. Ratio = float32 ms / side ms.
"""

from __future__ import annotations

import argparse

from fresh_process import median_ms

SETUP = """
from quant_kernels import N, cycling
from optcli.kernels.fast.memory import keep_freed_memory
from optcli.kernels.fast.w8a8 import linear_w8a8
from optcli.kernels.threads import blas_threads
from optcli.kernels.w8a8 import Int8Codes
from optcli.kernels.w8a8_ort import OrtInt8Linear
from optcli.steps.quantize import quantize_int8
keep_freed_memory()
rng = np.random.default_rng(0)
w = (rng.standard_normal((N, N)) / np.sqrt(N)).astype(np.float32)
x = rng.standard_normal(({batch}, N)).astype(np.float32)
if {kind!r} == "float32":
    ws = [np.ascontiguousarray(w.T).T.copy(order="K") for _ in range(2)]
    f = cycling(lambda v: x @ v.T, ws)
else:
    t = quantize_int8(w, axis=0, symmetric=True)
    make = (lambda: OrtInt8Linear(t, blas_threads())) if {kind!r} == "ort" else (
        lambda: Int8Codes(t))
    ws = [make() for _ in range(6 if {kind!r} == "ort" else 2)]
    f = cycling(lambda v: linear_w8a8(x, v, None, "dynamic"), ws)
"""


def side(kind: str, batch: int, repeats: int) -> float:
    return median_ms(SETUP.format(kind=kind, batch=batch), repeats)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", default="1,8,256")
    ap.add_argument("--repeats", type=int, default=40)
    args = ap.parse_args()
    print("| batch | float32 ms | W8A8 onnxruntime ms (×) | W8A8 NumPy tier ms (×) |\n"
          "|---|---|---|---|")
    for batch in map(int, args.batches.split(",")):
        reps = args.repeats if batch < 64 else max(10, args.repeats // 4)
        f32, o, n = (side(k, batch, reps) for k in ("float32", "ort", "numpy"))
        print(f"| {batch} | {f32:.2f} | {o:.2f} ({f32 / o:.2f}×) | {n:.2f} ({f32 / n:.2f}×) |",
              flush=True)


if __name__ == "__main__":
    main()
