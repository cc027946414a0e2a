"""Reference kernels: naive, obviously correct, slow; the oracle the fast tier is tested against.

Every op in `optcli.ops.OPS` has one entry in `REFERENCE`, called as
`fn(**inputs, **attrs) -> np.ndarray` with attrs resolved to their defaults. Kernels compute in
float64 where arithmetic is involved and return float32 for float inputs. Shape rules and
their error messages live in `contract`, shared with the fast tier.
"""

from __future__ import annotations

from typing import Callable

from optcli.kernels.reference import activations, attention, dense, norms, pooling, sequence, shape

REFERENCE: dict[str, Callable] = {
    "linear": dense.linear,
    "conv2d": dense.conv2d,
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
