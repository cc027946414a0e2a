"""Reference multi-head attention with grouped KV heads, causal/padding masks and rotary positions.

One (batch, head) at a time, in float64:

    scores[t, s] = scale * q_h[t] . k_g[s]        g = h // (H / KV)   (HF `repeat_kv` order)
    allowed[t, s] = (not causal or s <= t) and mask[b, s] != 0
    y_h[t] = softmax over allowed s of scores[t, s]  @  v_g[s]

A query row with no allowed key (e.g. a padded position under a causal mask) outputs zeros
rather than NaN. Rotary positions (RoFormer) rotate pairs of features by angle
pos * base^(-2i/d) for pair i of head dim d, positions 0..T-1:
'half' pairs (i, i + d/2) as HF LLaMA's rotate_half; 'interleaved' pairs (2i, 2i+1) as GPT-J.
"""

from __future__ import annotations

import math

import numpy as np

from optcli.kernels.reference.contract import attention_dims


def rotary(x: np.ndarray, style: str, base: float) -> np.ndarray:
    """Rotate each feature pair of x[T, d] by angle t * base^(-2i/d); returns a new array."""
    T, d = x.shape
    pairs = [(i, i + d // 2) if style == "half" else (2 * i, 2 * i + 1) for i in range(d // 2)]
    pos = np.arange(T, dtype=np.float64)
    out = x.copy()
    for i, (a, b) in enumerate(pairs):
        angle = pos * base ** (-2 * i / d)
        cos, sin = np.cos(angle), np.sin(angle)
        out[:, a] = x[:, a] * cos - x[:, b] * sin
        out[:, b] = x[:, b] * cos + x[:, a] * sin
    return out


def _head(q, k, v, allowed, scale) -> np.ndarray:
    """q[T, d], k[S, d], v[S, dv], allowed[T, S] -> y[T, dv]."""
    y = np.zeros((q.shape[0], v.shape[1]))
    for t in range(q.shape[0]):
        keep = allowed[t]
        if not keep.any():
            continue                                   # nothing to attend to: zeros, not NaN
        s = scale * (k[keep] @ q[t])
        p = np.exp(s - s.max())
        y[t] = (p / p.sum()) @ v[keep]
    return y


def attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, mask: np.ndarray | None = None,
              num_heads: int = 1, num_kv_heads: int | None = None, causal: bool = False,
              rope: str = "none", rope_base: float = 10000.0,
              scale: float | None = None) -> np.ndarray:
    """q[B, T, H*Dh], k[B, S, KV*Dh], v[B, S, KV*Dv], mask[B, S] -> y[B, T, H*Dv]."""
    H, KV, dh, dv = attention_dims(q, k, v, mask, num_heads, num_kv_heads, causal, rope)
    scale = 1 / math.sqrt(dh) if scale is None else scale
    q, k, v = (np.asarray(a, np.float64) for a in (q, k, v))
    B, T, S = q.shape[0], q.shape[1], k.shape[1]
    y = np.zeros((B, T, H * dv))
    for b in range(B):
        allowed = np.ones((T, S), bool)
        if causal:
            allowed &= np.arange(S)[None, :] <= np.arange(T)[:, None]
        if mask is not None:
            allowed &= (mask[b] != 0)[None, :]
        for h in range(H):
            g = h // (H // KV)
            qh, kh = q[b, :, h * dh:(h + 1) * dh], k[b, :, g * dh:(g + 1) * dh]
            if rope != "none":
                qh, kh = rotary(qh, rope, rope_base), rotary(kh, rope, rope_base)
            y[b, :, h * dv:(h + 1) * dv] = _head(qh, kh, v[b, :, g * dv:(g + 1) * dv],
                                                 allowed, scale)
    return y.astype(np.float32)
