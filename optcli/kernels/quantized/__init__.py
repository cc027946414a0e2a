"""Packed low-bit `linear`: quantized weights stay packed while the model runs.

Batch-1 inference of a large layer is bound by memory bandwidth, so reading 4 or 8 bits per
weight instead of 32 can make a quantized layer faster than float32, provided decoding costs
less than the bytes it saves. That rules out plain NumPy (decoding a whole layer to float32
per call is many times slower than the float32 product) and is what these kernels are for:

- layout.py     PackedWeight: codes, per-group scale and zero point (views of the stored
                QuantizedTensor, int8 or 2..8-bit bit-packed), and how it is read out;
- reference.py  the oracle: decode everything with formats/bitpack.py, one matmul;
- jit.py        numba kernels (optional extra `fast`): rows unpacked in registers into an
                L1 buffer and dotted there (small batches), or decoded tiles (large ones);
- tiles.py      tiled decode + BLAS, with a NumPy decoder when numba is absent;
- kernel.py     `linear_packed`, the runtime's kernel, choosing backend and threads;
- gather.py     `embedding_packed`: a quantized embedding table decoded row by row as ids
                name them;
- decision.py   where the packed kernel is measured faster than float32 (the plan's "auto").
"""

from optcli.kernels.quantized.gather import embedding_packed
from optcli.kernels.quantized.kernel import default_backend, linear, linear_packed, warm_up
from optcli.kernels.quantized.layout import PackedWeight, from_tensor

__all__ = ["PackedWeight", "default_backend", "embedding_packed", "from_tensor", "linear",
           "linear_packed", "warm_up"]
