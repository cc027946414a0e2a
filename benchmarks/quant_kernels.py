"""A 4096 x 4096 `linear` with packed 8-bit and 4-bit weights against float32 NumPy and
onnxruntime's dynamic int8, at batch 1, 16 and 256.

    pip install -e '.[fast,bench]'                      # numba; onnx + onnxruntime (optional)
    python benchmarks/quant_kernels.py                  # threads 2 and 1, table on stdout
    python benchmarks/quant_kernels.py --threads 2 --batches 1 --repeats 31

Sides, timed interleaved in one process (optcli.bench.measure; ratio = float32 median / side
median, > 1: faster than float32):
- float32: x @ W.T with W laid out as the runtime lays it out (the transposed view of an
  [in, out] C-order copy), the NumPy/OpenBLAS baseline;
- numba / numpy: kernels/quantized `linear` with the "numba" and "numpy" backends;
- ort-int8: onnxruntime on a MatMul whose weight onnxruntime.quantization.quantize_dynamic made
  int8 (activations quantized per call: not the same numerics, the speed to aim at).
Weights: 8-bit = the int8 layout of the quantize step (int8 codes, a scale per output
channel); 4-bit = the packed layout, groups of 128, asymmetric. Every side cycles through
enough copies of its weight (>= 96 MB per side) that each call streams the weight from memory,
as in a model whose layers do not fit the 32 MB L3; a single weight re-read from L3 would
flatter the smaller formats. Threads: BLAS and the packed kernels get N (threadpoolctl),
onnxruntime intra_op_num_threads = N. Report the load (`uptime`) with the figures: the machine
is shared.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import tempfile

import numpy as np
from threadpoolctl import threadpool_limits

from optcli.bench import measure
from optcli.formats.rowpack import pack_rows
from optcli.kernels.fast.memory import keep_freed_memory
from optcli.kernels.quantized import PackedWeight, default_backend, linear, warm_up
from optcli.steps.quantize import quantize_int8

N = 4096
STREAM_BYTES = 96 << 20


def weights(kind: str, rng) -> tuple[list, int]:
    """Copies of one random W[N, N] in `kind` ("float32", "int8", "int4", "int3"), and their
    bytes."""
    w = (rng.standard_normal((N, N)) / np.sqrt(N)).astype(np.float32)
    if kind == "float32":
        one = np.ascontiguousarray(w.T).T                       # as runtime._load lays it out
    elif kind == "int8":
        t = quantize_int8(w, axis=0, symmetric=True)
        one = PackedWeight.from_int8(t.codes, t.scale, t.zero_point)
    elif kind == "int3":
        u = rng.integers(0, 8, (N, N), dtype=np.uint8)
        codes = pack_rows(u, 3)                                  # the packed layout's rows
        scale = rng.random((N, N // 128), dtype=np.float32) / 32
        zp = rng.integers(0, 8, (N, N // 128), dtype=np.uint8)
        one = PackedWeight.from_arrays(codes, scale, zp, 3, 128, N)
    else:
        u = rng.integers(0, 16, (N, N), dtype=np.uint8)
        codes = (u[:, 0::2] << 4) | u[:, 1::2]                   # MSB first: code 2j high
        scale = rng.random((N, N // 128), dtype=np.float32) / 64
        zp = rng.integers(0, 16, (N, N // 128), dtype=np.uint8)
        one = PackedWeight.from_arrays(codes, scale, zp, 4, 128, N)
    copies = max(2, -(-STREAM_BYTES // one.nbytes))
    return [one] + [_copy(one) for _ in range(copies - 1)], one.nbytes


def _copy(w):
    if isinstance(w, np.ndarray):
        return np.ascontiguousarray(w.T).T.copy(order="K")
    return PackedWeight(w.codes.copy(), w.scale.copy(), w.zero.copy(), w.bits, w.group, w.shape)


def ort_sessions(rng, threads: int) -> list | None:
    """onnxruntime sessions of MatMul(x, W.T) with W dynamic-int8 quantized, or None."""
    try:
        import onnx
        import onnxruntime as ort
        from onnx import TensorProto, helper, numpy_helper
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError:
        return None
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    sessions = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(max(2, STREAM_BYTES // (N * N))):
            wt = (rng.standard_normal((N, N)) / np.sqrt(N)).astype(np.float32)   # [in, out]
            graph = helper.make_graph(
                [helper.make_node("MatMul", ["x", "w"], ["y"])], "linear",
                [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["B", N])],
                [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["B", N])],
                [numpy_helper.from_array(wt, "w")])
            src, dst = os.path.join(tmp, f"f{i}.onnx"), os.path.join(tmp, f"q{i}.onnx")
            onnx.save(helper.make_model(graph), src)
            logging.getLogger().setLevel(logging.ERROR)          # a pre-processing hint
            quantize_dynamic(src, dst, weight_type=QuantType.QInt8)
            sessions.append(ort.InferenceSession(dst, opts, providers=["CPUExecutionProvider"]))
    return sessions


def cycling(fn, items):
    """A no-argument call of fn(item) on the next item each time."""
    state = {"i": 0}
    def call():
        state["i"] = (state["i"] + 1) % len(items)
        return fn(items[state["i"]])
    return call


def table(args, threads: int, rng) -> None:
    dense, _ = weights("float32", rng)
    sessions = ort_sessions(rng, threads) if not args.no_ort else None
    print(f"threads {threads}: ratio = float32 time / side time (> 1: faster than float32)")
    print(f"{'weight':7} {'batch':>5} {'float32 ms':>10} " + " ".join(
        f"{s:>9}" for s in ["numba", "numpy", "ort-int8"]))
    for kind in ("int8", "int4"):
        packed, nbytes = weights(kind, rng)
        for batch in map(int, args.batches.split(",")):
            x = rng.standard_normal((batch, N)).astype(np.float32)
            sides = {"float32": cycling(lambda w: x @ w.T, dense),
                     "numpy": cycling(lambda w: linear(x, w, None, "numpy"), packed)}
            if default_backend() == "numba":
                sides["numba"] = cycling(lambda w: linear(x, w, None, "numba"), packed)
            if sessions and kind == "int8":
                sides["ort-int8"] = cycling(lambda s: s.run(None, {"x": x}), sessions)
            reps = args.repeats if batch < 256 else max(5, args.repeats // 3)
            t = dict(zip(sides, measure(list(sides.values()), batch, reps, warmup=2)))
            base = t["float32"].median_ms
            cells = [f"{base / t[s].median_ms:9.2f}" if s in t else f"{'-':>9}"
                     for s in ("numba", "numpy", "ort-int8")]
            print(f"{kind:7} {batch:>5} {base:10.2f} " + " ".join(cells), flush=True)
        print(f"  ({kind}: {nbytes / 2**20:.1f} MB per weight, float32 64.0 MB)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", default="2,1")
    ap.add_argument("--batches", default="1,16,256")
    ap.add_argument("--repeats", type=int, default=21)
    ap.add_argument("--no-ort", action="store_true", help="leave onnxruntime out")
    args = ap.parse_args()
    warm_up(default_backend())
    keep_freed_memory()                  # as the runtime does: freed buffers are reused
    print(f"load average: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    for threads in map(int, args.threads.split(",")):
        with threadpool_limits(threads, user_api="blas") if threads else contextlib.nullcontext():
            table(args, threads, np.random.default_rng(0))


if __name__ == "__main__":
    main()
