"""Fast attention: batched float32 matmuls over head-major views, softmax in place, in L2 blocks.

Heads are views, never copies, and each kv head is broadcast over its rep = H / KV query
heads (HF `repeat_kv` order) by the matmul itself. Scores are computed *transposed*, keys on
rows and queries on columns, because every softmax step is then cheap in NumPy:

    sT[b, g, r, s, t] = k[b, g, s] . (scale * q)[b, g, r, t]    # [nb, KV, rep, S, t]
    sT += bias                        # 0 / -inf: causal [S, t], padding [B, 1, 1, S, 1]
    sT = exp(sT - max over s)         # a max down axis -2 is an elementwise SIMD max of rows;
                                      # along the last axis it is a reduction 2x slower
    total = einsum("...st->...t", sT) # column sums: 1.5x faster than .sum(axis=-2), and no
                                      # BLAS gemv (OpenBLAS threads gemv from 9216 elements)
    ctxT = v^T @ sT / total           # [.., Dv, t]: normalise the context, not the S x t probs
    y[b, t, h*Dv + d] = ctxT[.., d, t]

That is ~14% less CPU time than the row-major formulation on BERT shapes. The scale is folded
into q (or its rotary tables), Dh/S times cheaper than scaling scores. Blocks of batch rows
(or of query columns) keep the scores in L2, and query tiles keep each per-head GEMM on one
BLAS thread (see `_blocks`). A fully masked query has max -inf; it is raised to a finite
value so exp gives zeros, and a floor on the total turns 0/0 into zeros (the reference's
choice) instead of NaN.
"""

from __future__ import annotations

import math

import numpy as np

from optcli.kernels.reference.contract import attention_dims

_SCORE_BLOCK = 1 << 18                  # score elements per block (1 MB)
_GEMM_SINGLE = 1 << 19                  # OpenBLAS threads a GEMM once M*N*K >= 2 * 65536 * 4
_MIN = np.float32(np.finfo(np.float32).min)
_TINY = np.float32(np.finfo(np.float32).tiny)


def rope_tables(T: int, d: int, base: float, scale: float = 1.0) -> tuple[np.ndarray, ...]:
    """cos, sin [T, 1, d/2] of angle t * base^(-2i/d), times `scale` (float64 angles)."""
    inv_freq = base ** (-np.arange(0, d // 2) * 2.0 / d)
    angle = np.arange(T, dtype=np.float64)[:, None] * inv_freq
    return ((np.cos(angle) * scale).astype(np.float32)[:, None, :],
            (np.sin(angle) * scale).astype(np.float32)[:, None, :])


def rotate(x: np.ndarray, style: str, cos: np.ndarray, sin: np.ndarray) -> np.ndarray:
    """Rotary positions on x[B, T, heads, d]: pairs (i, i + d/2) ('half') or (2i, 2i+1)."""
    h = x.shape[-1] // 2
    a, b = (slice(0, h), slice(h, None)) if style == "half" else (slice(0, None, 2),
                                                                  slice(1, None, 2))
    out = np.empty_like(x)
    xa, xb, oa, ob = x[..., a], x[..., b], out[..., a], out[..., b]
    np.multiply(xa, cos, out=oa)
    oa -= xb * sin                      # a' = a cos - b sin
    np.multiply(xb, cos, out=ob)
    ob += xa * sin                      # b' = b cos + a sin
    return out


def _mask_bias(mask: np.ndarray | None, causal: bool, T: int, S: int) -> np.ndarray | None:
    """Additive 0 / -inf bias broadcastable to transposed scores [B, KV, rep, S, T], or None."""
    bias = None
    if causal:
        bias = np.where(np.arange(S)[:, None] <= np.arange(T)[None, :], 0, -np.inf)
        bias = bias.astype(np.float32)[None, None, None]              # [1, 1, 1, S, T]
    if mask is not None:
        pad = np.where(np.asarray(mask) != 0, 0, -np.inf).astype(np.float32)
        pad = pad[:, None, None, :, None]                              # [B, 1, 1, S, 1]
        bias = pad if bias is None else bias + pad
    return bias


def _bias_block(bias: np.ndarray, bs: slice, ts: slice) -> np.ndarray:
    """The part of a broadcast bias [1 or B, 1, 1, S, 1 or T] that covers one score block."""
    return bias[bs if bias.shape[0] > 1 else slice(None), :, :, :,
                ts if bias.shape[4] > 1 else slice(None)]


def _blocks(B: int, T: int, S: int, H: int, d: int):
    """(batch slice, query slice) blocks of about _SCORE_BLOCK scores. Query tiles are also
    kept narrow enough that each per-head GEMM, [S, d] @ [d, t], stays under OpenBLAS's
    threading threshold: a 2-thread GEMM of a few microseconds of work costs a thread handoff,
    and milliseconds when the other core is busy (measured: 40x slower attention)."""
    t = max(1, min(T, _SCORE_BLOCK // (H * S)))
    if (_GEMM_SINGLE - 1) // (S * d) >= 16:        # else the GEMMs are big enough to share
        t = min(t, (_GEMM_SINGLE - 1) // (S * d))
    if t >= T:
        nb = max(1, _SCORE_BLOCK // (H * S * T))
        for b in range(0, B, nb):
            yield slice(b, min(b + nb, B)), slice(0, T)
        return
    step = -(-T // -(-T // t))                      # equal tiles: 128 -> 2 x 64, not 127 + 1
    for b in range(B):
        for t0 in range(0, T, step):
            yield slice(b, b + 1), slice(t0, min(t0 + step, T))


def _project(q, k, v, H, KV, dh, dv, rope, rope_base, scale):
    """Head-major views: qT[B, KV, rep, Dh, T] (scaled, rotated), k[B, KV, 1, S, Dh] and
    vT[B, KV, 1, Dv, S]; BLAS reads the transposed ones as Fortran-order operands."""
    B, T, S = q.shape[0], q.shape[1], k.shape[1]
    q4, k4 = q.reshape(B, T, H, dh), k.reshape(B, S, KV, dh)
    if rope != "none":
        q4 = rotate(q4, rope, *rope_tables(T, dh, rope_base, scale))
        k4 = rotate(k4, rope, *rope_tables(S, dh, rope_base))
    else:
        q4 = q4 * np.float32(scale)
    qT = q4.reshape(B, T, KV, H // KV, dh).transpose(0, 2, 3, 4, 1)
    kh = k4.transpose(0, 2, 1, 3)[:, :, None]
    vT = v.reshape(B, S, KV, dv).transpose(0, 2, 3, 1)[:, :, None]
    return qT, kh, vT


def _softmax_context(s: np.ndarray, v_t: np.ndarray, bias: np.ndarray | None,
                     ctx: np.ndarray) -> np.ndarray:
    """ctx[.., Dv, t] = v^T @ softmax over keys of scores s[.., S, t] (s is overwritten)."""
    if bias is not None:
        s += bias
        m = np.maximum(s.max(axis=-2, keepdims=True), _MIN)    # all -inf column -> finite
    else:
        m = s.max(axis=-2, keepdims=True)
    s -= m
    np.exp(s, out=s)
    total = np.maximum(np.einsum("...st->...t", s), _TINY)[..., None, :]   # [.., 1, t]
    np.matmul(v_t, s, out=ctx)
    ctx /= total
    return ctx


def attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, mask: np.ndarray | None = None,
              num_heads: int = 1, num_kv_heads: int | None = None, causal: bool = False,
              rope: str = "none", rope_base: float = 10000.0,
              scale: float | None = None) -> np.ndarray:
    """q[B, T, H*Dh], k[B, S, KV*Dh], v[B, S, KV*Dv], mask[B, S] -> y[B, T, H*Dv]."""
    H, KV, dh, dv = attention_dims(q, k, v, mask, num_heads, num_kv_heads, causal, rope)
    q, k, v = (np.asarray(a, np.float32) for a in (q, k, v))
    B, T, S = q.shape[0], q.shape[1], k.shape[1]
    scale = 1 / math.sqrt(dh) if scale is None else scale
    qT, kh, vT = _project(q, k, v, H, KV, dh, dv, rope, rope_base, scale)
    bias = _mask_bias(mask, causal, T, S)
    y = np.empty((B, T, H * dv), np.float32)
    yh = y.reshape(B, T, KV, H // KV, dv).transpose(0, 2, 3, 1, 4)     # [B, KV, rep, T, Dv]
    blocks = list(_blocks(B, T, S, H, max(dh, dv)))
    if not blocks:                                     # B == 0 or T == 0
        return y
    n, t = blocks[0][0].stop - blocks[0][0].start, len(range(T)[blocks[0][1]])
    s_buf = np.empty(n * H * S * t, np.float32)        # reused by every block: stays in L2
    c_buf = np.empty(n * H * dv * t, np.float32)
    for bs, ts in blocks:
        lead = (bs.stop - bs.start, KV, H // KV)
        t = len(range(T)[ts])
        s = np.matmul(kh[bs], qT[bs, :, :, :, ts],
                      out=s_buf[:math.prod(lead) * S * t].reshape(lead + (S, t)))
        ctx = c_buf[:math.prod(lead) * dv * t].reshape(lead + (dv, t))
        _softmax_context(s, vT[bs], None if bias is None else _bias_block(bias, bs, ts),
                         ctx)
        yh[bs, :, :, ts] = ctx.swapaxes(-1, -2)
    return y
