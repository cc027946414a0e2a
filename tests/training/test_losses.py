"""Losses: values against their definitions, gradients against finite differences."""

from __future__ import annotations

import numpy as np
import pytest

from optcli.training import losses


def _fd(fn, x, eps=1e-6):
    g = np.zeros_like(x)
    for idx in np.ndindex(*x.shape):
        old = x[idx]
        x[idx] = old + eps
        hi = fn(x)[0]
        x[idx] = old - eps
        lo = fn(x)[0]
        x[idx] = old
        g[idx] = (hi - lo) / (2 * eps)
    return g


rng = np.random.default_rng(0)
LOGITS = rng.standard_normal((4, 5))
LABELS = np.array([0, 3, 4, 1])
TEACHER = rng.standard_normal((4, 5))


@pytest.mark.parametrize("fn", [
    lambda x: losses.cross_entropy(x, LABELS),
    lambda x: losses.distillation(x, TEACHER, 2.0),
    lambda x: losses.distillation(x, TEACHER, 0.5),
    lambda x: losses.mse(x, TEACHER),
    lambda x: losses.lm_cross_entropy(x.reshape(2, 2, 5), np.array([[1, 2], [3, 0]])),
])
def test_gradients_match_finite_differences(fn):
    x = LOGITS.copy()
    _, g = fn(x)
    np.testing.assert_allclose(g.reshape(x.shape), _fd(fn, x), rtol=1e-6, atol=1e-8)


def test_cross_entropy_value():
    want = -np.mean([np.log(np.exp(r[y]) / np.exp(r).sum()) for r, y in zip(LOGITS, LABELS)])
    assert losses.cross_entropy(LOGITS, LABELS)[0] == pytest.approx(want)


def test_distillation_is_zero_against_itself_and_scaled_by_t_squared():
    assert losses.distillation(LOGITS, LOGITS, 3.0)[0] == pytest.approx(0.0, abs=1e-12)
    t = 4.0
    p = np.exp(losses.log_softmax(TEACHER / t))
    kl = (p * (np.log(p) - losses.log_softmax(LOGITS / t))).sum(axis=-1).mean()
    assert losses.distillation(LOGITS, TEACHER, t)[0] == pytest.approx(t * t * kl)


def test_lm_cross_entropy_ignores_the_last_position():
    logits = rng.standard_normal((2, 3, 4))
    _, g = losses.lm_cross_entropy(logits, np.array([[0, 1, 2], [3, 2, 1]]))
    assert not g[:, -1].any()
