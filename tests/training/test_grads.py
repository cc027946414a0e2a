"""Every op's backward against central finite differences (float64), and every op's training
forward against the reference kernel. Parametrized over the op table: a new op without a
gradient entry or a test case fails here."""

from __future__ import annotations

import numpy as np
import pytest

from optcli.kernels.reference import REFERENCE
from optcli.ops import OPS
from optcli.training.grads import GRADS, differentiable
from tests.training.cases import op_cases

CASES = op_cases(np.random.default_rng(0))
EPS = 1e-6


def _case_ids():
    return [(op, i) for op in sorted(OPS) for i in range(len(CASES.get(op, [None])))]


def test_every_op_has_a_gradient_and_a_case():
    assert set(GRADS) == set(OPS)
    assert set(CASES) == set(OPS)


def _float_roles(op, inputs):
    return [r for r, v in inputs.items() if differentiable(op, r)
            and all(np.asarray(a).dtype.kind == "f" for a in (v if isinstance(v, list) else [v]))]


def _loss(op, inputs, attrs, proj):
    y, _ = GRADS[op].forward(inputs, attrs)
    return float((y * proj).sum())


def _numeric(op, inputs, attrs, proj, role, k=None):
    """Central differences of sum(y * proj) w.r.t. every element of inputs[role] (or [k])."""
    a = inputs[role][k] if k is not None else inputs[role]
    g = np.zeros_like(a)
    for idx in np.ndindex(*a.shape):
        old = a[idx]
        a[idx] = old + EPS
        hi = _loss(op, inputs, attrs, proj)
        a[idx] = old - EPS
        lo = _loss(op, inputs, attrs, proj)
        a[idx] = old
        g[idx] = (hi - lo) / (2 * EPS)
    return g


@pytest.mark.parametrize("op,i", _case_ids())
def test_backward_matches_finite_differences(op, i):
    inputs, raw = CASES[op][i]
    attrs = OPS[op].resolve_attrs(raw)
    inputs = {r: [a.copy() for a in v] if isinstance(v, list) else np.array(v)
              for r, v in inputs.items()}
    y, saved = GRADS[op].forward(inputs, attrs)
    roles = _float_roles(op, inputs)
    if op == "positions":
        assert not roles and y.dtype == np.int64
        return
    proj = np.random.default_rng(1).standard_normal(y.shape)
    got = GRADS[op].backward(proj, saved, frozenset(roles))
    assert set(got) == set(roles)
    for role in roles:
        if isinstance(inputs[role], list):
            for k, gk in enumerate(got[role]):
                want = _numeric(op, inputs, attrs, proj, role, k)
                np.testing.assert_allclose(gk, want, rtol=1e-5, atol=1e-7, err_msg=role)
        else:
            want = _numeric(op, inputs, attrs, proj, role)
            assert got[role].shape == inputs[role].shape
            np.testing.assert_allclose(got[role], want, rtol=1e-5, atol=1e-7, err_msg=role)


@pytest.mark.parametrize("op,i", _case_ids())
def test_training_forward_matches_the_reference_kernel(op, i):
    inputs, raw = CASES[op][i]
    attrs = OPS[op].resolve_attrs(raw)
    f32 = {r: ([a.astype(np.float32) for a in v] if isinstance(v, list)
               else v.astype(np.float32) if v.dtype.kind == "f" else v)
           for r, v in inputs.items()}
    want = REFERENCE[op](**f32, **attrs)
    got, _ = GRADS[op].forward(f32, attrs)
    assert got.shape == want.shape
    assert got.dtype == want.dtype
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-6)


def test_needs_limits_the_gradients_computed():
    inputs, attrs = CASES["conv2d"][0]
    y, saved = GRADS["conv2d"].forward(inputs, OPS["conv2d"].resolve_attrs(attrs))
    got = GRADS["conv2d"].backward(np.ones_like(y), saved, frozenset({"weight"}))
    assert set(got) == {"weight"}
