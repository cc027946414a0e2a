"""Fast kernels: float32 NumPy tuned for BLAS and cache; tested against `REFERENCE`.

Every op in `optcli.ops.OPS` has one entry in `FAST`, called as `fn(**inputs, **attrs)`.
Speed comes from a few rules, each explained where it is applied:
  * every FLOP-heavy op is one BLAS matmul per block (linear, conv2d via im2col, attention);
  * views instead of copies: conv windows, pooling taps, attention heads, transposes;
  * multi-pass elementwise work (GELU's erf, softmax, norms) runs in place on L2-sized blocks;
  * conv2d writes channel-major memory and returns an NCHW view of it, so results may be
    non-contiguous: consumers must not assume C order.
Shape rules and error messages are shared with the reference (`reference.contract`).
`fused.py` holds kernels for chains of ops (conv2d+relu+maxpool2d, linear+gelu, ...) that the
runtime's schedule uses in place of single nodes; they are not in `FAST`, which stays one
kernel per op.
"""

from __future__ import annotations

from typing import Callable

from optcli.kernels.fast import activations, attention, conv, dense, norms, pooling, sequence, shape

FAST: dict[str, Callable] = {
    "linear": dense.linear,
    "conv2d": conv.conv2d,
    "maxpool2d": pooling.maxpool2d,
    "avgpool2d": pooling.avgpool2d,
    "global_avgpool": pooling.global_avgpool,
    "flatten": shape.flatten,
    "reshape": shape.reshape,
    "transpose": shape.transpose,
    "concat": shape.concat,
    "relu": activations.relu,
    "gelu": activations.gelu,
    "silu": activations.silu,
    "tanh": activations.tanh,
    "sigmoid": activations.sigmoid,
    "softmax": activations.softmax,
    "add": activations.add,
    "mul": activations.mul,
    "layernorm": norms.layernorm,
    "rmsnorm": norms.rmsnorm,
    "batchnorm": norms.batchnorm,
    "embedding": sequence.embedding,
    "positions": sequence.positions,
    "attention": attention.attention,
    "meanpool": sequence.meanpool,
    "l2normalize": sequence.l2normalize,
}
