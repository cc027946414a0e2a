"""Fast kernels against PyTorch, the semantics imported models come from (skipped without torch).

Rotary positions are written out here as HF LLaMA's `rotate_half` and GPT-J's
`rotate_every_two`, so the two styles are checked against their sources, not against us.
"""

import numpy as np
import pytest

from optcli.kernels.fast import FAST

torch = pytest.importorskip("torch")
F = torch.nn.functional


def rnd(seed, *shape):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def t(a):
    return torch.from_numpy(np.ascontiguousarray(a))


@pytest.mark.parametrize("stride, padding, dilation, groups", [
    (1, 2, 1, 1), (2, 1, 2, 2), ([2, 1], [0, 1], 1, 4)])
def test_conv2d(stride, padding, dilation, groups):
    x, w, b = rnd(0, 3, 4, 11, 10), rnd(1, 8, 4 // groups, 3, 3), rnd(2, 8)
    want = F.conv2d(t(x), t(w), t(b), stride=stride, padding=padding, dilation=dilation,
                    groups=groups).numpy()
    got = FAST["conv2d"](x, w, b, stride=stride, padding=padding, dilation=dilation,
                         groups=groups)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("kernel, stride, padding, include", [
    (2, None, 0, True), (3, 2, 1, True), (3, 2, 1, False)])
def test_pools(kernel, stride, padding, include):
    x = rnd(3, 2, 3, 9, 8)
    want_max = F.max_pool2d(t(x), kernel, stride, padding).numpy()
    want_avg = F.avg_pool2d(t(x), kernel, stride, padding, count_include_pad=include).numpy()
    np.testing.assert_allclose(FAST["maxpool2d"](x, kernel, stride, padding), want_max)
    np.testing.assert_allclose(FAST["avgpool2d"](x, kernel, stride, padding, include), want_avg,
                               rtol=1e-5, atol=1e-6)


def test_layernorm_and_gelu():
    x, w, b = rnd(4, 2, 5, 384), rnd(5, 384), rnd(6, 384)
    np.testing.assert_allclose(FAST["layernorm"](x, w, b, eps=1e-12),
                               F.layer_norm(t(x), (384,), t(w), t(b), 1e-12).numpy(),
                               rtol=1e-5, atol=1e-5)
    x = 4 * rnd(7, 1000)
    for mode in ("none", "tanh"):
        np.testing.assert_allclose(FAST["gelu"](x, approximate=mode),
                                   F.gelu(t(x), approximate=mode).numpy(), rtol=1e-5, atol=1e-6)


def _rope_torch(x, style, base):
    """x[B, H, T, d] rotated as HF LLaMA (half) or GPT-J (interleaved)."""
    d, T = x.shape[-1], x.shape[-2]
    inv_freq = 1.0 / (base ** (torch.arange(0, d, 2, dtype=torch.float64) / d))
    freqs = torch.outer(torch.arange(T, dtype=torch.float64), inv_freq)
    if style == "half":
        cos, sin = torch.cat([freqs, freqs], -1).cos(), torch.cat([freqs, freqs], -1).sin()
        rot = torch.cat([-x[..., d // 2:], x[..., :d // 2]], -1)
    else:
        cos, sin = freqs.cos().repeat_interleave(2, -1), freqs.sin().repeat_interleave(2, -1)
        rot = torch.stack([-x[..., 1::2], x[..., ::2]], -1).flatten(-2)
    return (x * cos.float() + rot * sin.float()).float()


@pytest.mark.parametrize("kv, causal, rope, masked", [
    (4, False, "none", False), (2, True, "half", True), (1, True, "interleaved", False)])
def test_attention(kv, causal, rope, masked):
    B, T, H, dh = 2, 7, 4, 8
    q, k, v = rnd(8, B, T, H * dh), rnd(9, B, T, kv * dh), rnd(10, B, T, kv * dh)
    mask = (np.arange(T)[None] < np.array([[T], [4]])).astype(np.int64) if masked else None

    def heads(a, n):
        return t(a).reshape(B, T, n, dh).transpose(1, 2)

    qh, kh, vh = heads(q, H), heads(k, kv), heads(v, kv)
    if rope != "none":
        qh, kh = _rope_torch(qh, rope, 10000.0), _rope_torch(kh, rope, 10000.0)
    kh, vh = kh.repeat_interleave(H // kv, 1), vh.repeat_interleave(H // kv, 1)
    allowed = torch.ones(B, 1, T, T, dtype=torch.bool)
    if causal:
        allowed &= torch.ones(T, T, dtype=torch.bool).tril()
    if masked:
        allowed &= t(mask).bool()[:, None, None, :]
    want = F.scaled_dot_product_attention(qh, kh, vh, attn_mask=allowed)
    want = want.transpose(1, 2).reshape(B, T, H * dh).numpy()
    got = FAST["attention"](q, k, v, mask, num_heads=H, num_kv_heads=kv, causal=causal,
                            rope=rope, rope_base=10000.0, scale=None)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
