"""SmoothQuant: the float function is unchanged, activation outliers shrink, norms fold."""

import numpy as np
import pytest

from optcli.errors import StepError
from optcli.runtime import Runtime
from optcli.steps import activations, quantize, smoothquant
from optcli.steps.base import StepContext
from tests.conftest import make_lm, make_mlp


def _ids(n=32, seed=0):
    return {"ids": np.random.default_rng(seed).integers(0, 20, (n, 12))}


def _outlier_lm():
    """make_lm with two layernorm channels scaled x20: activation outliers, as in LLMs."""
    m = make_lm()
    w = m.tensors["ln.w"].decode()
    w[[3, 11]] *= 20
    from optcli.formats import DenseTensor
    return m.replace(tensors={**m.tensors, "ln.w": DenseTensor(w)})


def _run(model, seed=1):
    return Runtime(model).run(_ids(8, seed))["logits"]


def test_float_outputs_unchanged_and_outliers_reduced():
    model = _outlier_lm()
    ctx = StepContext(calibration=_ids)
    smooth, record = smoothquant.apply(model, smoothquant.Config(alpha=0.5), ctx)
    np.testing.assert_allclose(_run(smooth), _run(model), rtol=1e-4,
                               atol=1e-4 * np.abs(_run(model)).max())
    rows = {r["layer"]: r for r in record.layers}
    assert rows["attn.q"]["applied"] == "folded into " + next(
        n.name for n in model.graph.nodes if n.op == "layernorm")          # q/k/v share it
    assert rows["attn.q"]["scale_max"] == rows["attn.v"]["scale_max"]
    assert rows["mlp.down"]["applied"].startswith("mul ")                  # after a gelu
    for r in record.layers:
        assert r["act_max_ratio_after"] <= r["act_max_ratio_before"] + 1e-9
    assert rows["attn.q"]["act_max_ratio_after"] < 0.5 * rows["attn.q"]["act_max_ratio_before"]
    assert "ln.w" in model.tensors and model.tensors["ln.w"].decode()[3] != 0   # input intact


def test_smoothing_helps_static_w8a8_on_outliers():
    model = _outlier_lm()
    ctx = StepContext(calibration=_ids)

    def w8a8(m):
        m, _ = quantize.apply(m, quantize.Config(), ctx)
        return activations.apply(m, activations.Config(mode="static"), ctx)[0]
    y0 = _run(model)
    err = [np.linalg.norm(_run(w8a8(m)) - y0) for m in
           (model, smoothquant.apply(model, smoothquant.Config(alpha=0.5), ctx)[0])]
    assert err[1] < err[0]


def test_mul_is_inserted_when_the_input_has_other_readers():
    model = make_mlp()                     # fc1 reads a flatten: not a norm
    smooth, record = smoothquant.apply(model, smoothquant.Config(layers=["fc1"]),
                                       StepContext(calibration=lambda: {
                                           "image": np.random.default_rng(0).standard_normal(
                                               (16, 1, 8, 8)).astype(np.float32)}))
    assert [n.op for n in smooth.graph.nodes].count("mul") == 1
    x = {"image": np.random.default_rng(2).standard_normal((4, 1, 8, 8)).astype(np.float32)}
    np.testing.assert_allclose(Runtime(smooth).run(x)["logits"], Runtime(model).run(x)["logits"],
                               rtol=1e-5, atol=1e-5)


def test_quantized_weights_are_refused():
    model = make_mlp()
    q, _ = quantize.apply(model, quantize.Config(), StepContext())
    with pytest.raises(StepError, match="layer 'fc1'.*before quantize"):
        smoothquant.apply(q, smoothquant.Config(), StepContext(calibration=lambda: {}))
