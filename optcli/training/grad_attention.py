"""Forward and backward of multi-head attention with grouped KV heads, masks and rotary
positions (the reference kernel's semantics, vectorised over batch and heads).

Shapes: q[B, T, H*Dh] -> [B, H, T, Dh]; k, v[B, S, KV*D] -> [B, KV, S, D], each kv head
repeated H/KV times (head h reads kv head h // (H/KV), HF `repeat_kv` order).

    s = scale * q k^T  [B, H, T, S],  p = softmax over allowed s,  y = p v
    dv = p^T dy,  dp = dy v^T,  ds = p * (dp - sum(dp * p)),  dq = scale ds k,  dk = scale ds^T q
Gradients of repeated kv heads are summed over their group. A query with no allowed key
outputs zeros (p = 0), so it passes no gradient. Rotary positions (Su et al., RoFormer 2021)
rotate feature pairs by pos * base^(-2i/d); a rotation's transpose is the rotation by the
negative angle, which is how gradients go back through it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from optcli.kernels.reference.contract import attention_dims


def _pairs(d: int, style: str) -> tuple[np.ndarray, np.ndarray]:
    """Indices (a, b) of the rotated feature pairs of a head of dim d."""
    i = np.arange(d // 2)
    return (i, i + d // 2) if style == "half" else (2 * i, 2 * i + 1)


def rotate(x: np.ndarray, style: str, base: float, sign: float = 1.0) -> np.ndarray:
    """Rotate pairs of x[..., T, d] by sign * t * base^(-2i/d) (sign -1: the transpose)."""
    T, d = x.shape[-2:]
    a, b = _pairs(d, style)
    angle = np.arange(T)[:, None] * base ** (-2 * np.arange(d // 2) / d)      # [T, d/2]
    cos, sin = np.cos(angle).astype(x.dtype), (sign * np.sin(angle)).astype(x.dtype)
    out = np.empty_like(x)
    out[..., a] = x[..., a] * cos - x[..., b] * sin
    out[..., b] = x[..., b] * cos + x[..., a] * sin
    return out


def _heads(x: np.ndarray, n: int) -> np.ndarray:
    """[B, T, n*D] -> [B, n, T, D]."""
    B, T, W = x.shape
    return x.reshape(B, T, n, W // n).transpose(0, 2, 1, 3)


def _allowed(B, T, S, causal, mask) -> np.ndarray:
    """[B, 1, T, S]: key s is visible from query t."""
    ok = np.ones((B, 1, T, S), bool)
    if causal:
        ok &= np.arange(S)[None, :] <= np.arange(T)[:, None]
    if mask is not None:
        ok &= (np.asarray(mask) != 0)[:, None, None, :]
    return ok


def attention_forward(inputs: dict[str, Any], attrs: dict[str, Any]):
    q, k, v, mask = inputs["q"], inputs["k"], inputs["v"], inputs.get("mask")
    H, KV, dh, dv = attention_dims(q, k, v, mask, attrs["num_heads"], attrs["num_kv_heads"],
                                   attrs["causal"], attrs["rope"])
    scale = attrs["scale"] or 1 / math.sqrt(dh)
    rope, base, group = attrs["rope"], attrs["rope_base"], H // KV
    qh, kh, vh = _heads(q, H), _heads(k, KV), _heads(v, KV)
    if rope != "none":
        qh, kh = rotate(qh, rope, base), rotate(kh, rope, base)
    kr, vr = np.repeat(kh, group, axis=1), np.repeat(vh, group, axis=1)   # [B, H, S, D]
    ok = _allowed(q.shape[0], q.shape[1], k.shape[1], attrs["causal"], mask)
    s = np.where(ok, scale * (qh @ kr.transpose(0, 1, 3, 2)), -np.inf)
    top = s.max(axis=-1, keepdims=True)
    e = np.exp(s - np.where(np.isfinite(top), top, 0))        # a fully masked row: all zeros
    p = e / np.maximum(e.sum(axis=-1, keepdims=True), np.finfo(q.dtype).tiny)
    y = p @ vr                                                   # [B, H, T, Dv]
    B, T = q.shape[:2]
    saved = (qh, kr, vr, p, scale, rope, base, KV, k.shape, v.shape)
    return y.transpose(0, 2, 1, 3).reshape(B, T, H * dv), saved


def attention_backward(dy, saved, needs: frozenset[str]) -> dict[str, np.ndarray]:
    qh, kr, vr, p, scale, rope, base, KV, kshape, vshape = saved
    B, H, T, dv = qh.shape[0], qh.shape[1], qh.shape[2], vr.shape[-1]
    dyh = dy.reshape(B, T, H, dv).transpose(0, 2, 1, 3)          # [B, H, T, Dv]
    dp = dyh @ vr.transpose(0, 1, 3, 2)
    ds = scale * p * (dp - (dp * p).sum(axis=-1, keepdims=True))
    dq = ds @ kr
    dk = ds.transpose(0, 1, 3, 2) @ qh                             # [B, H, S, Dh]
    dvh = p.transpose(0, 1, 3, 2) @ dyh
    if rope != "none":
        dq, dk = rotate(dq, rope, base, -1.0), rotate(dk, rope, base, -1.0)
    out = {"q": _merge(dq)}
    out["k"] = _merge(_group_sum(dk, KV)).reshape(kshape)
    out["v"] = _merge(_group_sum(dvh, KV)).reshape(vshape)
    return {r: g for r, g in out.items() if r in needs}


def _group_sum(g: np.ndarray, kv: int) -> np.ndarray:
    """[B, H, S, D] -> [B, KV, S, D]: the gradients of a repeated kv head add up."""
    B, H, S, D = g.shape
    return g.reshape(B, kv, H // kv, S, D).sum(axis=2)


def _merge(g: np.ndarray) -> np.ndarray:
    """[B, n, T, D] -> [B, T, n*D]."""
    B, n, T, D = g.shape
    return g.transpose(0, 2, 1, 3).reshape(B, T, n * D)
