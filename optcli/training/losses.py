"""Training losses, each returning (mean loss, dL/d(model output)).

- cross_entropy(logits[N, C], labels[N]): mean of -log softmax(logits)[label]; the gradient
  is (softmax - onehot) / N.
- lm_cross_entropy(logits[B, T, V], ids[B, T]): next-token prediction, logits[:, :-1] scored
  on ids[:, 1:] (as `optcli eval` scores perplexity); the last position gets no gradient.
- distillation(student, teacher, T): knowledge distillation (Hinton, Vinyals & Dean,
  "Distilling the Knowledge in a Neural Network", 2015): KL(softmax(teacher/T) ||
  softmax(student/T)) times T^2, so the soft term's gradient, T (p_s - p_t) / N, keeps its
  size when T changes. Averaged over every position of a [..., C] output.
- mse(output, target): for outputs that are not logits (embeddings, regression), distillation
  is the mean squared error to the teacher's output.
log-softmax is computed as x - max - log(sum(exp(x - max))): no overflow, no log(0).
"""

from __future__ import annotations

import numpy as np


def log_softmax(x: np.ndarray) -> np.ndarray:
    z = x - x.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def cross_entropy(logits: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
    """logits[N, C], labels[N] int -> (mean NLL, dlogits[N, C])."""
    n = logits.shape[0]
    logp = log_softmax(logits)
    rows = np.arange(n)
    loss = -float(logp[rows, labels].mean())
    grad = np.exp(logp)
    grad[rows, labels] -= 1
    return loss, grad / n


def lm_cross_entropy(logits: np.ndarray, ids: np.ndarray) -> tuple[float, np.ndarray]:
    """logits[B, T, V] predicting ids[:, 1:] from positions 0..T-2."""
    B, T, V = logits.shape
    loss, g = cross_entropy(logits[:, :-1].reshape(-1, V), ids[:, 1:].reshape(-1))
    grad = np.zeros_like(logits)
    grad[:, :-1] = g.reshape(B, T - 1, V)
    return loss, grad


def distillation(student: np.ndarray, teacher: np.ndarray,
                 temperature: float) -> tuple[float, np.ndarray]:
    """T^2 * mean KL(p_teacher^T || p_student^T) over all positions of [..., C] logits."""
    t = float(temperature)
    logq = log_softmax(student / t)
    logp = log_softmax(teacher.astype(student.dtype) / t)
    p = np.exp(logp)
    n = student.size // student.shape[-1]
    loss = t * t * float((p * (logp - logq)).sum()) / n
    return loss, (t * (np.exp(logq) - p) / n).astype(student.dtype)


def mse(output: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray]:
    diff = output - target.astype(output.dtype)
    return float((diff * diff).mean()), 2 * diff / diff.size


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 of logits[N, C] against labels[N]."""
    return float((logits.argmax(axis=-1) == labels).mean())
