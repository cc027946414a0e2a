"""Optimizers and penalties: update rules against hand computation, convergence on a quadratic."""

from __future__ import annotations

import numpy as np
import pytest

from optcli.training.optimizers import SGD, Adam, make_optimizer, penalty


@pytest.mark.parametrize("kind", ["sgd", "adam", "adamw"])
def test_minimises_a_quadratic(kind):
    target = np.array([1.0, -2.0, 3.0])
    w = {"w": np.zeros(3)}
    opt = make_optimizer(kind, momentum=0.9)
    for _ in range(500):
        opt.step(w, {"w": w["w"] - target}, 0.05)
    np.testing.assert_allclose(w["w"], target, atol=1e-2)


def test_sgd_momentum_and_nesterov_by_hand():
    w, g = {"w": np.array([1.0])}, {"w": np.array([0.5])}
    opt = SGD(momentum=0.9, nesterov=True)
    opt.step(w, g, 0.1)                      # v = 0.5; step = g + 0.9 v = 0.95
    assert w["w"][0] == pytest.approx(1 - 0.095)
    opt.step(w, g, 0.1)                      # v = 0.95; step = 0.5 + 0.855
    assert w["w"][0] == pytest.approx(1 - 0.095 - 0.1355)
    assert g["w"][0] == 0.5                  # gradients are never modified


def test_adam_first_step_is_lr_times_sign():
    w = {"w": np.array([1.0, 1.0])}
    Adam().step(w, {"w": np.array([3.0, -0.01])}, 0.1)
    np.testing.assert_allclose(w["w"], [0.9, 1.1], rtol=1e-6)


def test_adamw_decay_is_decoupled():
    w = {"w": np.array([2.0])}
    Adam(weight_decay=0.1, decoupled=True).step(w, {"w": np.array([0.0])}, 0.5)
    assert w["w"][0] == pytest.approx(2.0 * (1 - 0.05))      # no gradient: only the decay


def test_penalty_value_and_gradient():
    w = np.array([1.0, -2.0, 0.5])
    value, g = penalty(w, l1=0.1, l2=0.2)
    assert value == pytest.approx(0.1 * 3.5 + 0.1 * 5.25)
    np.testing.assert_allclose(g, 0.1 * np.sign(w) + 0.2 * w)
    assert penalty(w, 0.0, 0.0) == (0.0, None)
