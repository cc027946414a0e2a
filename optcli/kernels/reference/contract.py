"""The contract both kernel tiers honour: argument normalisation, shape rules, their errors.

The reference tier is the specification, so the rules live here and the fast tier imports
them: both tiers accept the same inputs and fail with the same one-line `ValueError` (the
runtime turns it into a user error naming the node), e.g.

    linear: x has 783 features, weight expects 784

Nothing here computes a kernel's result; it only answers "is this call well formed, and what
shape comes out".
"""

from __future__ import annotations

from math import prod
from typing import Sequence

import numpy as np


def pair(v: int | Sequence[int]) -> tuple[int, int]:
    """A stride/padding/kernel attribute as (h, w): 3 -> (3, 3), [3] -> (3, 3), [2, 3] -> (2, 3)."""
    if isinstance(v, (int, np.integer)):
        return int(v), int(v)
    vals = [int(a) for a in v]
    return (vals[0], vals[0]) if len(vals) == 1 else (vals[0], vals[1])


def window_out(op: str, n: int, k: int, stride: int, pad: int, dilation: int = 1) -> int:
    """Output length of a sliding window (floor mode, as PyTorch/ONNX with ceil_mode=0)."""
    span = dilation * (k - 1) + 1
    out = (n + 2 * pad - span) // stride + 1
    if out < 1:
        raise ValueError(f"{op}: window {k} (dilation {dilation}) does not fit input size {n} "
                         f"with padding {pad}")
    return out


def check_rank(op: str, role: str, a: np.ndarray, rank: int, layout: str) -> None:
    if a.ndim != rank:
        raise ValueError(f"{op}: {role} must be {layout} (rank {rank}), got shape {list(a.shape)}")


def check_linear(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None) -> None:
    check_rank("linear", "weight", weight, 2, "[out, in]")
    if x.ndim < 1 or x.shape[-1] != weight.shape[1]:
        feats = x.shape[-1] if x.ndim else 0
        raise ValueError(f"linear: x has {feats} features, weight expects {weight.shape[1]}")
    if bias is not None and bias.shape != (weight.shape[0],):
        raise ValueError(f"linear: bias shape {list(bias.shape)} does not match "
                         f"{weight.shape[0]} outputs")


def check_conv(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, groups: int) -> None:
    check_rank("conv2d", "x", x, 4, "[B, C, H, W]")
    check_rank("conv2d", "weight", weight, 4, "[O, C/groups, kh, kw]")
    out_ch, cg = weight.shape[:2]
    if x.shape[1] != cg * groups:
        raise ValueError(f"conv2d: x has {x.shape[1]} channels, weight expects {cg * groups} "
                         f"({cg} per group x {groups} groups)")
    if out_ch % groups:
        raise ValueError(f"conv2d: {out_ch} output channels do not split into {groups} groups")
    if bias is not None and bias.shape != (out_ch,):
        raise ValueError(f"conv2d: bias shape {list(bias.shape)} does not match {out_ch} outputs")


def pool_geometry(op: str, x: np.ndarray, kernel, stride, padding) -> tuple[tuple[int, int], ...]:
    """((kh, kw), (sh, sw), (ph, pw), (Ho, Wo)) for a pool over x[B, C, H, W].

    Padding is limited to half the window (PyTorch's rule) so no window is all padding: a max
    over only -inf or an average over zero elements would have no meaning.
    """
    check_rank(op, "x", x, 4, "[B, C, H, W]")
    k, p = pair(kernel), pair(padding)
    s = k if stride is None else pair(stride)
    if p[0] > k[0] // 2 or p[1] > k[1] // 2:
        raise ValueError(f"{op}: padding {list(p)} must be at most half the window {list(k)}")
    out = (window_out(op, x.shape[2], k[0], s[0], p[0]),
           window_out(op, x.shape[3], k[1], s[1], p[1]))
    return k, s, p, out


def check_last_axis(op: str, role: str, x: np.ndarray, param: np.ndarray | None) -> None:
    """A per-feature parameter (norm weight/bias) must have shape [D] for x[..., D]."""
    if param is not None and param.shape != (x.shape[-1],):
        raise ValueError(f"{op}: {role} shape {list(param.shape)} does not match the last axis "
                         f"of x {list(x.shape)}")


def check_channels(op: str, x: np.ndarray, params: dict[str, np.ndarray]) -> None:
    """Per-channel parameters (batchnorm) must have shape [C] for x[B, C, ...]."""
    if x.ndim < 2:
        raise ValueError(f"{op}: x must be [B, C, ...], got shape {list(x.shape)}")
    for role, p in params.items():
        if p.shape != (x.shape[1],):
            raise ValueError(f"{op}: {role} shape {list(p.shape)} does not match {x.shape[1]} "
                             f"channels of x {list(x.shape)}")


def flatten_shape(shape: tuple[int, ...], axis: int) -> tuple[int, int]:
    """ONNX Flatten: [prod(shape[:axis]), prod(shape[axis:])] (axis 0 gives [1, N])."""
    if axis > len(shape):
        raise ValueError(f"flatten: axis {axis} is beyond rank {len(shape)} of {list(shape)}")
    return prod(shape[:axis]), prod(shape[axis:])


def reshape_target(shape: tuple[int, ...], target: Sequence[int]) -> tuple[int, ...]:
    """ONNX Reshape: 0 copies the input dim at that index, one -1 is inferred."""
    out = []
    for i, d in enumerate(target):
        if d == 0 and i >= len(shape):
            raise ValueError(f"reshape: 0 at index {i} but input {list(shape)} "
                             f"has rank {len(shape)}")
        out.append(shape[i] if d == 0 else int(d))
    if out.count(-1) > 1 or any(d < -1 for d in out):
        raise ValueError(f"reshape: bad target {list(target)} (at most one -1, no other negatives)")
    size, known = prod(shape), prod(d for d in out if d != -1)
    if -1 in out:
        if known == 0 or size % known:
            raise ValueError(f"reshape: cannot infer -1 in {list(target)} for input {list(shape)}")
        out[out.index(-1)] = size // known
    if prod(out) != size:
        raise ValueError(f"reshape: input {list(shape)} ({size} elements) does not fit {out}")
    return tuple(out)


def check_perm(perm: Sequence[int], ndim: int) -> None:
    if sorted(perm) != list(range(ndim)):
        raise ValueError(f"transpose: perm {list(perm)} is not a permutation of {ndim} axes")


def check_ids(ids: np.ndarray, vocab: int) -> None:
    """Token ids must be integers in [0, vocab)."""
    if ids.dtype.kind not in "iu":
        raise ValueError(f"embedding: ids must be integers, got {ids.dtype}")
    if ids.size == 0:
        return
    lo, hi = int(ids.min()), int(ids.max())
    if lo < 0 or hi >= vocab:
        bad = lo if lo < 0 else hi
        raise ValueError(f"embedding: token id {bad} is out of range for vocabulary size {vocab}")


def attention_dims(q: np.ndarray, k: np.ndarray, v: np.ndarray, mask: np.ndarray | None,
                   num_heads: int, num_kv_heads: int | None, causal: bool,
                   rope: str) -> tuple[int, int, int, int]:
    """(H, KV, Dh, Dv) for q[B, T, H*Dh], k[B, S, KV*Dh], v[B, S, KV*Dv], mask[B, S]."""
    for role, a in (("q", q), ("k", k), ("v", v)):
        check_rank("attention", role, a, 3, "[B, T, heads*head_dim]")
    kv = num_kv_heads or num_heads
    if num_heads % kv:
        raise ValueError(f"attention: {num_heads} heads do not group into {kv} kv heads")
    if q.shape[2] % num_heads or k.shape[2] % kv or v.shape[2] % kv:
        raise ValueError(f"attention: widths q {q.shape[2]}, k {k.shape[2]}, v {v.shape[2]} do "
                         f"not split into {num_heads} query / {kv} kv heads")
    dh, dv = q.shape[2] // num_heads, v.shape[2] // kv
    if k.shape[2] // kv != dh:
        raise ValueError(f"attention: key head dim {k.shape[2] // kv} != query head dim {dh}")
    if k.shape[:2] != v.shape[:2] or k.shape[0] != q.shape[0]:
        raise ValueError(f"attention: q {list(q.shape)}, k {list(k.shape)}, v {list(v.shape)} "
                         f"disagree on batch or key length")
    if causal and k.shape[1] != q.shape[1]:
        raise ValueError(f"attention: causal needs equal query and key lengths, got "
                         f"{q.shape[1]} and {k.shape[1]}")
    if rope != "none" and dh % 2:
        raise ValueError(f"attention: rotary positions need an even head dim, got {dh}")
    if mask is not None and mask.shape != k.shape[:2]:
        raise ValueError(f"attention: mask shape {list(mask.shape)} must be [B, S] = "
                         f"{list(k.shape[:2])}")
    return num_heads, kv, dh, dv


def check_mask(op: str, x: np.ndarray, mask: np.ndarray | None) -> None:
    """A [B, T] keep-mask over x[B, T, ...]."""
    if mask is not None and mask.shape != x.shape[:2]:
        raise ValueError(f"{op}: mask shape {list(mask.shape)} must be [B, T] = "
                         f"{list(x.shape[:2])}")

