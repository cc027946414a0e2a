"""Fused fast kernels: an op and the elementwise ops after it in one call.

The runtime replaces a chain of nodes with one fused kernel when every intermediate value has
exactly one consumer (the next node of the chain) and is not a graph output (`find_chains`);
the reference tier never fuses, so it stays the oracle. A fused kernel finishes each block of
the first op's output while it is still in cache and never materialises the intermediates:

    conv2d -> relu -> maxpool2d   per GEMM block [O, n, Ho, width]: pool taps straight from
                                  the block (no [B, O, Ho, Wo] activation is ever written),
                                  then bias and relu on the 4x smaller pooled output. Both
                                  commute with max exactly (float rounding and relu are
                                  monotone: max(a + b) = max(a) + b), so this is bit-identical
                                  to bias, relu, then pool.
    conv2d -> relu                relu in place on each contiguous block before it is copied out
    linear -> relu                relu in place on the fresh GEMM output
    linear -> gelu                bias add and GELU on L2 blocks of rows of the GEMM output
    flatten -> linear (-> relu)   one step instead of two or three
    mul -> add                    input scaling (x * scale + shift): the add in place

At batch 1 a whole LeNet runs in 0.05-0.1 ms and each step costs the runtime about 0.5 us of
Python dispatch, so saving steps matters there as much as saving passes over memory does at
batch 256.

Attributes keep their op's names, except where two ops share one: the pool's kernel, stride
and padding are `pool_kernel`, `pool_stride`, `pool_padding`.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable, Sequence

import numpy as np

from optcli.kernels.fast.activations import add, bias_gelu_inplace, mul, relu_inplace
from optcli.kernels.fast.conv import add_bias, conv_blocks, conv_plan, gather, windows
from optcli.kernels.fast.dense import linear
from optcli.kernels.fast.pooling import max_windows, pool_geometry_of, pool_plan
from optcli.kernels.fast.shape import flatten
from optcli.kernels.fast.windows import key
from optcli.kernels.reference.contract import check_linear


def linear_relu(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None) -> np.ndarray:
    """relu(x[..., in] @ weight[out, in].T + bias) -> y[..., out]."""
    return relu_inplace(linear(x, weight, bias))


def linear_gelu(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None,
                approximate: str = "none") -> np.ndarray:
    """gelu(x[..., in] @ weight[out, in].T + bias) -> y[..., out] (erf GELU unless 'tanh')."""
    check_linear(x, weight, bias)
    y = linear(x, weight)                                   # fresh, C-contiguous, no bias yet
    bias_gelu_inplace(y.reshape(-1, y.shape[-1]), bias, approximate)
    return y


def conv2d_relu(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None, stride=1,
                padding=0, dilation=1, groups: int = 1) -> np.ndarray:
    """relu(conv2d(x[B, C, H, W], weight[O, C/groups, kh, kw]) + bias) -> y[B, O, Ho, Wo]."""
    out_hw, blocks = conv_blocks(x, weight, bias, stride, padding, dilation, groups)
    return gather(blocks, x.shape[0], out_hw, bias, relu_inplace)


def conv2d_relu_maxpool2d(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None,
                          stride=1, padding=0, dilation=1, groups: int = 1, pool_kernel=2,
                          pool_stride=None, pool_padding=0) -> np.ndarray:
    """maxpool2d(relu(conv2d(x[B, C, H, W]) + bias)) -> y[B, O, Hp, Wp], channel-major memory
    (an NCHW view, like conv2d's own output)."""
    if np.shape(x)[:1] == (1,):
        return _conv_relu_pool_one(x, weight, bias, key(stride), key(padding), key(dilation),
                                   groups, key(pool_kernel), key(pool_stride), key(pool_padding))
    out_hw, blocks = conv_blocks(x, weight, bias, stride, padding, dilation, groups)
    B, y, geometry = x.shape[0], None, None
    for sl, blk in blocks:                                  # blk [O, n, Ho, width >= Wo]
        if y is None:
            geometry = pool_plan("maxpool2d", blk[..., :out_hw[1]], pool_kernel, pool_stride,
                                 pool_padding)
            y = np.empty((blk.shape[0], B) + geometry[3], np.float32)
        max_windows(blk[..., :out_hw[1]], *geometry, out=y[:, sl])
    return relu_inplace(add_bias(y, bias)).transpose(1, 0, 2, 3)


@lru_cache(maxsize=256)
def _one_plan(xshape, xstrides, wshape, bshape, stride, padding, dilation, groups, kernel,
              pool_stride, pool_padding):
    """The conv plan and the pool geometry of one image, checked once per shape."""
    plan = conv_plan(xshape, xstrides, wshape, bshape, stride, padding, dilation, groups)
    return plan, pool_geometry_of(plan.out_hw, kernel, pool_stride, pool_padding)


def _conv_relu_pool_one(x, weight, bias, *attrs) -> np.ndarray:
    """Batch 1, where Python per call costs as much as the arithmetic: one cached plan, one
    GEMM [O, K] @ [K, Ho*width], and the pool, bias and relu on [O, Ho, width] views."""
    x = np.asarray(x, np.float32)
    plan, (k, s, p, hw) = _one_plan(x.shape, x.strides, np.shape(weight),
                                    None if bias is None else np.shape(bias), *attrs)
    G, og, K = plan.wk_shape
    y = np.matmul(np.asarray(weight, np.float32).reshape(plan.wk_shape),
                  windows(x, plan.windows).reshape(G, K, -1))
    y = y.reshape(G * og, 1, plan.out_hw[0], plan.windows.width)[..., :plan.out_hw[1]]
    return relu_inplace(add_bias(max_windows(y, k, s, p, hw), bias)).transpose(1, 0, 2, 3)


def flatten_linear(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None,
                   axis: int = 1) -> np.ndarray:
    """linear(flatten(x, axis)) -> y[N, out]: one step instead of two (batch-1 dispatch)."""
    return linear(flatten(x, axis), weight, bias)


def flatten_linear_relu(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None,
                        axis: int = 1) -> np.ndarray:
    """relu(linear(flatten(x, axis))) -> y[N, out]."""
    return relu_inplace(linear(flatten(x, axis), weight, bias))


def mul_add(a: np.ndarray, b: np.ndarray, add_b: np.ndarray) -> np.ndarray:
    """a * b + add_b (broadcasting; input scaling), the add in place on the fresh product."""
    y, add_b = mul(a, b), np.asarray(add_b)
    if y.dtype == np.float32:
        try:
            return np.add(y, add_b, out=y) if add_b.dtype == np.float32 else \
                np.add(y, add_b, out=y, dtype=np.float32)
        except ValueError:          # add_b widens the shape: let `add` broadcast (or explain)
            pass
    return add(y, add_b)


@dataclass(frozen=True)
class Fusion:
    """A chain of ops and the kernel that runs it. Each op after the first reads the previous
    op's output through its `links` role, and its other inputs must be stored tensors.
    `prefixes` rename each op's other inputs and attributes for the kernel where names would
    clash (a pool's `kernel` is `pool_kernel`, an add's `b` is `add_b`)."""

    ops: tuple[str, ...]
    fn: Callable[..., np.ndarray]
    links: tuple[str, ...]          # one per op after the first
    prefixes: tuple[str, ...]       # one per op

    def attrs(self, parts: Sequence[dict[str, Any]]) -> dict[str, Any]:
        """The fused kernel's attributes from each op's resolved attributes."""
        return {p + k: v for p, a in zip(self.prefixes, parts) for k, v in a.items()}

    def inputs(self, parts: Sequence[dict[str, Any]]) -> dict[str, Any]:
        """The fused kernel's inputs (role -> value) from each op's inputs."""
        merged = dict(parts[0])
        for prefix, link, ins in zip(self.prefixes[1:], self.links, parts[1:]):
            merged.update((prefix + r, v) for r, v in ins.items() if r != link)
        return merged


_X, _P = ("x",), ("",)
FUSIONS: tuple[Fusion, ...] = (                  # longest first: the first match wins
    Fusion(("conv2d", "relu", "maxpool2d"), conv2d_relu_maxpool2d, _X * 2, ("", "", "pool_")),
    Fusion(("conv2d", "relu"), conv2d_relu, _X, _P * 2),
    Fusion(("flatten", "linear", "relu"), flatten_linear_relu, _X * 2, _P * 3),
    Fusion(("flatten", "linear"), flatten_linear, _X, _P * 2),
    Fusion(("linear", "relu"), linear_relu, _X, _P * 2),
    Fusion(("linear", "gelu"), linear_gelu, _X, _P * 2),
    Fusion(("mul", "add"), mul_add, ("a",), ("", "add_")),
)


def find_chains(nodes: Sequence[Any], keep: set[str], stored: set[str],
                fusable: Callable[[int], bool]) -> list[tuple[list[int], Fusion | None]]:
    """Group node indices into fused chains and single nodes, in node order (a chain sits at
    its first node). A chain's intermediates must have one consumer and not be in `keep`
    (graph outputs); other inputs of its later nodes must be `stored` tensors; `fusable(i)`
    vetoes node i (e.g. a linear that runs on a CSR weight)."""
    consumers: dict[str, list[int]] = defaultdict(list)
    for i, n in enumerate(nodes):
        for v in n.input_names():
            consumers[v].append(i)
    taken: set[int] = set()
    groups: list[tuple[list[int], Fusion | None]] = []
    for i, n in enumerate(nodes):
        if i in taken:
            continue
        chain, fusion = [i], None
        for f in FUSIONS:
            c = _chain(nodes, i, f, consumers, keep, stored) if f.ops[0] == n.op else None
            if c and all(fusable(j) for j in c):
                chain, fusion = c, f
                break
        taken.update(chain)
        groups.append((chain, fusion))
    return groups


def _chain(nodes, i: int, f: Fusion, consumers, keep, stored) -> list[int] | None:
    """Node indices [i, j, ...] running `f.ops` as a chain from node i, or None."""
    chain = [i]
    for op, link in zip(f.ops[1:], f.links):
        out = nodes[chain[-1]].outputs[0]
        users = consumers.get(out, [])
        if out in keep or len(users) != 1:
            return None
        nxt = nodes[users[0]]
        if nxt.op != op or nxt.inputs.get(link) != out or not all(
                isinstance(v, str) and v in stored for r, v in nxt.inputs.items() if r != link):
            return None
        chain.append(users[0])
    return chain
