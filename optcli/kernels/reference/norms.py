"""Reference normalisations in float64, straight from their definitions.

layernorm: (x - mean) / sqrt(var + eps) * weight + bias over the last axis, var biased (/D),
           as torch.nn.LayerNorm and ONNX LayerNormalization.
rmsnorm:   x / sqrt(mean(x^2) + eps) * weight over the last axis (LLaMA).
batchnorm: (x - mean[c]) / sqrt(var[c] + eps) * weight[c] + bias[c] on axis 1 (inference).
"""

from __future__ import annotations

import numpy as np

from optcli.kernels.reference.contract import check_channels, check_last_axis


def layernorm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None,
              eps: float = 1e-5) -> np.ndarray:
    check_last_axis("layernorm", "weight", x, weight)
    check_last_axis("layernorm", "bias", x, bias)
    x = np.asarray(x, np.float64)
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    y = (x - mean) / np.sqrt(var + eps) * weight
    if bias is not None:
        y = y + bias
    return y.astype(np.float32)


def rmsnorm(x: np.ndarray, weight: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    check_last_axis("rmsnorm", "weight", x, weight)
    x = np.asarray(x, np.float64)
    rms = np.sqrt((x ** 2).mean(axis=-1, keepdims=True) + eps)
    return (x / rms * weight).astype(np.float32)


def batchnorm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, mean: np.ndarray,
              var: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    check_channels("batchnorm", x, {"weight": weight, "bias": bias, "mean": mean, "var": var})
    per_channel = (1, -1) + (1,) * (x.ndim - 2)            # broadcast [C] over x[B, C, ...]

    def p(a):
        return np.asarray(a, np.float64).reshape(per_channel)

    y = (np.asarray(x, np.float64) - p(mean)) / np.sqrt(p(var) + eps) * p(weight) + p(bias)
    return y.astype(np.float32)
