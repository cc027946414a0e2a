"""The tape over whole graphs: outputs equal the reference runtime's, and the gradients of
every trainable tensor match finite differences (float64), residual and tied paths included."""

from __future__ import annotations

import numpy as np
import pytest

from optcli.runtime import Runtime
from optcli.training.tape import Tape
from tests.conftest import make_cnn, make_lm, make_mlp


def _feeds(model, rng):
    if model.task["kind"] == "language_model":
        return {"ids": rng.integers(0, 20, (2, 6))}
    return {"image": rng.standard_normal((3, 1, 8, 8)).astype(np.float32)}


def _weights(model, dtype):
    return {k: t.decode().astype(dtype) for k, t in model.tensors.items()}


@pytest.mark.parametrize("make", [make_mlp, make_cnn, make_lm])
def test_tape_forward_equals_the_reference_runtime(make):
    model = make()
    feeds = _feeds(model, np.random.default_rng(0))
    want = Runtime(model, kernels="reference").run(feeds)["logits"]
    got = Tape(model, set()).forward(feeds, _weights(model, np.float32), record=False)
    np.testing.assert_allclose(got["logits"], want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("mode", ["static", "dynamic"])
@pytest.mark.parametrize("make", [make_mlp, make_cnn])
def test_w8a8_layers_train_on_the_inputs_inference_quantizes(make, mode):
    """The tape fake-quantizes a W8A8 layer's input as the runtime does (QAT of activations),
    so training and inference compute the same function."""
    from optcli.steps import activations, quantize
    from optcli.steps.base import StepContext
    model = make()
    feeds = _feeds(model, np.random.default_rng(0))
    ctx = StepContext(calibration=lambda: feeds)
    model, _ = quantize.apply(model, quantize.Config(), ctx)
    model, _ = activations.apply(model, activations.Config(mode=mode), ctx)
    assert any(n.attrs.get("input_quant") == mode for n in model.graph.nodes)
    want = Runtime(model, kernels="reference").run(feeds)["logits"]
    got = Tape(model, set()).forward(feeds, _weights(model, np.float32), record=False)
    np.testing.assert_allclose(got["logits"], want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("make", [make_mlp, make_cnn, make_lm])
def test_tape_gradients_match_finite_differences(make):
    model = make()
    rng = np.random.default_rng(1)
    feeds = _feeds(model, rng)
    weights = _weights(model, np.float64)
    tape = Tape(model, set(model.tensors), dtype=np.float64)
    proj = rng.standard_normal(tape.forward(feeds, weights)["logits"].shape)
    grads = tape.backward({"logits": proj})
    assert set(grads) == set(model.tensors)
    for name, w in weights.items():
        for idx in [tuple(rng.integers(0, s) for s in w.shape) for _ in range(3)]:
            old, eps = w[idx], 1e-6
            w[idx] = old + eps
            hi = (tape.forward(feeds, weights, record=False)["logits"] * proj).sum()
            w[idx] = old - eps
            lo = (tape.forward(feeds, weights, record=False)["logits"] * proj).sum()
            w[idx] = old
            np.testing.assert_allclose(grads[name][idx], (hi - lo) / (2 * eps),
                                       rtol=1e-5, atol=1e-7, err_msg=f"{name}{idx}")


def test_only_trainable_tensors_get_gradients():
    model = make_mlp()
    tape = Tape(model, {"fc2.weight"})
    feeds = _feeds(model, np.random.default_rng(2))
    y = tape.forward(feeds, _weights(model, np.float32))["logits"]
    assert set(tape.backward({"logits": np.ones_like(y)})) == {"fc2.weight"}
