"""Optimizers over named float arrays, updated in place, plus L1/L2 penalties.

- SGD with momentum (Polyak 1964) and Nesterov's variant (Sutskever et al., ICML 2013):
  v = mu v + g;  w -= lr (g + mu v) (nesterov) or lr v.
- Adam (Kingma & Ba, ICLR 2015): bias-corrected first and second moments,
  w -= lr m_hat / (sqrt(v_hat) + eps).
- AdamW (Loshchilov & Hutter, "Decoupled Weight Decay Regularization", ICLR 2019): the decay
  w -= lr * wd * w is applied apart from the adaptive step. For SGD and Adam, `weight_decay`
  is the classic coupled form (added to the gradient), as in PyTorch.
Penalties are terms of the loss: l2/2 ||w||^2 and l1 ||w||_1 add l2 w and l1 sign(w) to the
gradient (`penalty`), whatever the optimizer. Gradients passed in are never modified.
"""

from __future__ import annotations

import numpy as np

OPTIMIZERS = ("sgd", "adam", "adamw")


class SGD:
    def __init__(self, momentum: float = 0.9, nesterov: bool = False, weight_decay: float = 0.0):
        self.momentum, self.nesterov, self.weight_decay = momentum, nesterov, weight_decay
        self.velocity: dict[str, np.ndarray] = {}

    def step(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray],
             lr: float) -> None:
        for name, g in grads.items():
            w = params[name]
            if self.weight_decay:
                g = g + self.weight_decay * w
            if self.momentum:
                v = self.velocity.setdefault(name, np.zeros_like(w))
                v *= self.momentum
                v += g
                g = g + self.momentum * v if self.nesterov else v
            w -= lr * g


class Adam:
    def __init__(self, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8,
                 weight_decay: float = 0.0, decoupled: bool = False):
        self.beta1, self.beta2, self.eps = beta1, beta2, eps
        self.weight_decay, self.decoupled = weight_decay, decoupled
        self.m: dict[str, np.ndarray] = {}
        self.v: dict[str, np.ndarray] = {}
        self.t = 0

    def step(self, params: dict[str, np.ndarray], grads: dict[str, np.ndarray],
             lr: float) -> None:
        self.t += 1
        c1, c2 = 1 - self.beta1 ** self.t, 1 - self.beta2 ** self.t    # bias corrections
        for name, g in grads.items():
            w = params[name]
            if self.weight_decay and not self.decoupled:
                g = g + self.weight_decay * w
            m = self.m.setdefault(name, np.zeros_like(w))
            v = self.v.setdefault(name, np.zeros_like(w))
            m *= self.beta1
            m += (1 - self.beta1) * g
            v *= self.beta2
            v += (1 - self.beta2) * g * g
            if self.weight_decay and self.decoupled:
                w -= lr * self.weight_decay * w
            w -= lr * (m / c1) / (np.sqrt(v / c2) + self.eps)


def make_optimizer(kind: str, momentum: float = 0.9, weight_decay: float = 0.0,
                   nesterov: bool = False):
    if kind == "sgd":
        return SGD(momentum, nesterov, weight_decay)
    if kind in ("adam", "adamw"):
        return Adam(weight_decay=weight_decay, decoupled=kind == "adamw")
    raise ValueError(f"optimizer {kind!r}; valid: {', '.join(OPTIMIZERS)}")


def penalty(w: np.ndarray, l1: float, l2: float) -> tuple[float, np.ndarray | None]:
    """(l1 ||w||_1 + l2/2 ||w||^2, its gradient), or (0, None) when both are zero."""
    if not l1 and not l2:
        return 0.0, None
    value = l1 * float(np.abs(w).sum()) + 0.5 * l2 * float((w * w).sum())
    return value, l1 * np.sign(w) + l2 * w
