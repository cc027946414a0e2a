"""W8A8 `linear` through onnxruntime's MatMulInteger: exact int8 products at int8 speed.

Optional (`pip install 'optcli[ort]'`: onnx builds the one-node graph, onnxruntime runs it).
NumPy has no int8 GEMM, so the NumPy tier (kernels/fast/w8a8.py) multiplies the int8 codes as
float32 in exact chunks: as fast as float32, never faster. onnxruntime's MatMulInteger (MLAS:
AVX2 / AVX-512 VNNI int8 dot products) computes the same integer sums in int32:

    acc[n, o] = sum_k (a[n, k] - a_zp) * (b[k, o] - b_zp[o])
    a = xq + 128 (uint8), a_zp = z_x + 128;  b = wq.T (int8), b_zp = the weight zero points

which equals the int64 reference sum exactly: |acc| <= K * 255 * 255 < 2^31 for K < 33025
(`OrtInt8Linear` refuses longer rows). Measured here on a 4096 x 4096 layer, 2 threads,
weights streamed from memory, activation quantization included (`benchmarks/w8a8_kernels.py`):
2.6x float32 sgemm at batch 1, 5.2x at 8, 3.1x at 256; the NumPy tier 0.96x, 0.87x, 0.53x.

One session per layer, built when the runtime prepares the model, on the BLAS thread count
of that moment (threads.blas_threads) with spinning off, so its idle threads do not take the
core the next NumPy kernel needs. The session holds the int8 weight (and MLAS's prepacked copy
of it); the runtime keeps no float32 copy.
"""

from __future__ import annotations

import functools
import importlib.util

import numpy as np

from optcli.formats import QuantizedTensor
from optcli.kernels.w8a8 import exact_chunk

K_MAX = (1 << 31) // (255 * 255)        # longest row whose int32 sums cannot overflow


@functools.lru_cache(maxsize=None)
def available() -> bool:
    """onnx and onnxruntime are installed (looked up, not imported)."""
    try:
        return all(importlib.util.find_spec(m) is not None for m in ("onnx", "onnxruntime"))
    except ValueError:                   # a module blocked in sys.modules
        return False


class OrtInt8Linear:
    """A W8A8 linear weight [out, in] (int8 codes, scale and zero point per output channel or
    per tensor) as a MatMulInteger session."""

    ndim = 2                             # read by check_linear, like an array's

    def __init__(self, t: QuantizedTensor, threads: int):
        out, k = t.shape
        if k > K_MAX:
            raise ValueError(f"int8 rows of {k} inputs can overflow int32 sums (max {K_MAX})")
        zp = (np.zeros(1, np.int8) if t.zero_point is None
              else np.asarray(t.zero_point, np.int8).reshape(-1))
        self.shape = (out, k)
        self.scale = np.broadcast_to(np.asarray(t.scale, np.float32).reshape(-1), (out,)).copy()
        wmax = int(np.abs(t.codes.astype(np.int16) - zp.reshape(-1, 1).astype(np.int16)).max(
            initial=0))
        # the NumPy tier's rule: a row within one exact chunk is summed in float32, a longer
        # one in float64; the same dtype here gives the same outputs
        self.exact_f32 = k <= exact_chunk(wmax)
        self._bytes = t.codes.nbytes + zp.nbytes + self.scale.nbytes
        self._session = _session(np.ascontiguousarray(t.codes.T), zp, threads)

    @property
    def nbytes(self) -> int:
        """The int8 weight and per-channel parameters (MLAS's prepacked copy not counted)."""
        return int(self._bytes)

    def int_matmul(self, q: np.ndarray, zero_point: int) -> np.ndarray:
        """acc[N, out] int32 = (q - zero_point) @ w'.T, q int8 codes held as float32 [N, in]."""
        a = (q + np.float32(128)).astype(np.uint8)                  # [-128, 127] -> [0, 255]
        azp = np.array(zero_point + 128, np.uint8)
        return self._session.run(None, {"a": a, "azp": azp})[0]


def _session(b: np.ndarray, b_zp: np.ndarray, threads: int):
    """An InferenceSession of y = MatMulInteger(a, b, azp, b_zp): a uint8 [N, K] and azp (a
    uint8 scalar) inputs, b int8 [K, O] and b_zp int8 [O] or [1] initializers, y int32."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper
    k, o = b.shape
    graph = helper.make_graph(
        [helper.make_node("MatMulInteger", ["a", "b", "azp", "bzp"], ["y"])], "w8a8",
        [helper.make_tensor_value_info("a", TensorProto.UINT8, ["N", k]),
         helper.make_tensor_value_info("azp", TensorProto.UINT8, [])],
        [helper.make_tensor_value_info("y", TensorProto.INT32, ["N", o])],
        [numpy_helper.from_array(b, "b"),
         numpy_helper.from_array(b_zp if b_zp.size > 1 else b_zp.reshape(()), "bzp")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = min(model.ir_version, 9)             # what older runtimes accept
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = max(1, threads), 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])
