"""Forward and backward of layernorm, rmsnorm and (inference) batchnorm.

layernorm over the last axis D, xh = (x - mean) / sigma, sigma = sqrt(var + eps), var biased:
    dw = sum dy * xh,  db = sum dy,  g = dy * w,
    dx = (g - mean(g) - xh * mean(g * xh)) / sigma
rmsnorm, r = sqrt(mean(x^2) + eps), y = x / r * w:
    dw = sum dy * x / r,  g = dy * w,  dx = (g - x * mean(g * x) / r^2) / r
batchnorm in its inference form is a per-channel affine map with fixed statistics:
    dx = dy * w / sqrt(var + eps),  dw = sum dy * xh,  db = sum dy
Its running mean and var are statistics, not trained, and get no gradient.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from optcli.kernels.reference.contract import check_channels, check_last_axis


def _sum_leading(a: np.ndarray) -> np.ndarray:
    """Sum over every axis but the last: a per-feature parameter's gradient [D]."""
    return a.reshape(-1, a.shape[-1]).sum(axis=0)


def layernorm_forward(inputs: dict[str, Any], attrs: dict[str, Any]):
    x, w, b = inputs["x"], inputs["weight"], inputs.get("bias")
    check_last_axis("layernorm", "weight", x, w)
    check_last_axis("layernorm", "bias", x, b)
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    sigma = np.sqrt(var + attrs["eps"])
    xh = (x - mean) / sigma
    y = xh * w if b is None else xh * w + b
    return y, (xh, sigma, w)


def layernorm_backward(dy, saved, needs: frozenset[str]) -> dict[str, np.ndarray]:
    xh, sigma, w = saved
    out = {}
    if "weight" in needs:
        out["weight"] = _sum_leading(dy * xh)
    if "bias" in needs:
        out["bias"] = _sum_leading(dy)
    if "x" in needs:
        g = dy * w
        out["x"] = (g - g.mean(axis=-1, keepdims=True)
                    - xh * (g * xh).mean(axis=-1, keepdims=True)) / sigma
    return out


def rmsnorm_forward(inputs: dict[str, Any], attrs: dict[str, Any]):
    x, w = inputs["x"], inputs["weight"]
    check_last_axis("rmsnorm", "weight", x, w)
    r = np.sqrt((x * x).mean(axis=-1, keepdims=True) + attrs["eps"])
    return x / r * w, (x, r, w)


def rmsnorm_backward(dy, saved, needs: frozenset[str]) -> dict[str, np.ndarray]:
    x, r, w = saved
    out = {}
    if "weight" in needs:
        out["weight"] = _sum_leading(dy * x / r)
    if "x" in needs:
        g = dy * w
        out["x"] = (g - x * (g * x).mean(axis=-1, keepdims=True) / (r * r)) / r
    return out


def batchnorm_forward(inputs: dict[str, Any], attrs: dict[str, Any]):
    x = inputs["x"]
    params = {r: inputs[r] for r in ("weight", "bias", "mean", "var")}
    check_channels("batchnorm", x, params)
    shape = (1, -1) + (1,) * (x.ndim - 2)               # broadcast [C] over x[B, C, ...]
    inv = (1 / np.sqrt(params["var"] + attrs["eps"])).reshape(shape)
    xh = (x - params["mean"].reshape(shape)) * inv
    y = xh * params["weight"].reshape(shape) + params["bias"].reshape(shape)
    return y, (xh, inv * params["weight"].reshape(shape))


def batchnorm_backward(dy, saved, needs: frozenset[str]) -> dict[str, np.ndarray]:
    xh, gain = saved
    axes = (0,) + tuple(range(2, dy.ndim))               # every axis but the channels
    out = {}
    if "weight" in needs:
        out["weight"] = (dy * xh).sum(axis=axes)
    if "bias" in needs:
        out["bias"] = dy.sum(axis=axes)
    if "x" in needs:
        out["x"] = dy * gain
    return out
