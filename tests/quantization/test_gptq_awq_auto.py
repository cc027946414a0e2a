"""GPTQ, AWQ and bits: auto on seeded layers with correlated inputs."""

import numpy as np
import pytest

from optcli.errors import StepError
from optcli.quantization.awq import rtn_effective, search_scale
from optcli.quantization.error import output_error, relative_output_error
from optcli.quantization.gptq import gptq
from optcli.quantization.grid import Spec, choose_grid, dequantize, quantize
from optcli.quantization.mixed import assign_bits


def _layer(seed=0, rows=48, cols=96, n=1024):
    """W[rows, cols] and H = X^T X / n of correlated inputs with uneven channel magnitudes."""
    rng = np.random.default_rng(seed)
    mix = rng.standard_normal((cols, cols)) / np.sqrt(cols)
    x = (rng.standard_normal((n, cols)) @ mix + 0.1 * rng.standard_normal((n, cols)))
    x *= np.exp(rng.standard_normal(cols))                  # some channels much larger
    return rng.standard_normal((rows, cols)), x.T @ x / n


def _rtn_error(w, h, spec):
    grid = choose_grid(w, spec)
    return relative_output_error(w, dequantize(quantize(w, grid), grid), h)


@pytest.mark.parametrize("spec", [Spec(4, "group", 32, True), Spec(3, "channel"),
                                  Spec(4, "group", 32, False), Spec(2, "tensor", symmetric=False),
                                  Spec(8, "channel")])
@pytest.mark.parametrize("act_order", [False, True])
def test_gptq_layer_error_at_most_rtn(spec, act_order):
    w, h = _layer()
    u, grid = gptq(w, h, spec, block_size=16, act_order=act_order)
    err = relative_output_error(w, dequantize(u, grid), h)
    assert err <= _rtn_error(w, h, spec)
    assert u.max() < 2 ** spec.bits and (not spec.symmetric or u.min() >= 1)


def test_gptq_4bit_groups_clearly_beat_rtn_and_act_order_helps():
    w, h = _layer(seed=1)
    spec = Spec(4, "group", 32)
    plain = relative_output_error(w, dequantize(*gptq(w, h, spec)), h)
    ordered = relative_output_error(w, dequantize(*gptq(w, h, spec, act_order=True)), h)
    assert plain < 0.8 * _rtn_error(w, h, spec) and ordered < plain


def test_gptq_codes_stay_within_half_a_step_of_their_own_grid():
    w, h = _layer(seed=2)
    u, grid = gptq(w, h, Spec(3, "group", 16, False))
    s, z = grid.expand()
    assert np.all(u <= 7) and np.allclose((u - z) * s, dequantize(u, grid))


def test_unfactorizable_hessian_names_the_layer():
    w, _ = _layer()
    v = np.ones(96) / np.sqrt(96)
    h = np.eye(96) - 1000 * np.outer(v, v)                 # indefinite: no damping fixes it
    with pytest.raises(StepError, match="layer 'blocks.3.fc'.*not positive definite"):
        gptq(w, h, Spec(4, "channel"), layer="blocks.3.fc")
    with pytest.raises(StepError, match="layer 'fc'.*NaN"):
        gptq(w, np.full((96, 96), np.nan), Spec(4, "channel"), layer="fc")


def test_awq_error_at_most_rtn_and_usually_below():
    w, h = _layer(seed=3)
    spec = Spec(3, "group", 32)
    s, alpha, err, rtn = search_scale([w], [spec], h, n_grid=10)
    assert err <= rtn == pytest.approx(output_error(rtn_effective(w, np.ones(96), spec) - w, h))
    assert err < rtn and 0 < alpha < 1
    assert err == pytest.approx(output_error(rtn_effective(w, s, spec) - w, h))


def test_assign_bits_meets_the_budget_and_spends_it_on_sensitive_layers():
    errors = [{2: 0.5, 4: 0.05, 8: 0.0001}, {2: 0.1, 4: 0.01, 8: 0.00002}]
    sizes = [{2: 25, 4: 50, 8: 100}, {2: 25, 4: 50, 8: 100}]
    chosen = assign_bits(errors, sizes, 100)
    assert sum(s[b] for s, b in zip(sizes, chosen)) <= 100 and chosen == [4, 4]
    assert assign_bits(errors, sizes, 75) == [4, 2]
    with pytest.raises(ValueError, match="below the smallest"):
        assign_bits(errors, sizes, 40)
