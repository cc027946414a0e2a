"""The finetune step: it learns, never mutates its input, is reproducible, and keeps masks,
int8 grids and codebook indices; early stopping, best restore, Ctrl-C and distillation."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from optcli.config import check_against_model, load_pipeline
from optcli.errors import ConfigError
from optcli.formats import CodebookTensor, QuantizedTensor, SparseTensor
from optcli.steps import finetune, prune, quantize
from optcli.steps.base import StepContext
from optcli.training.dataset import load_training_data, read_idx
from optcli.training.trainer import Trainer
from tests.conftest import make_lm, make_mlp, stored_arrays, write_yaml


def _data(tmp_path: Path, n: int = 600, labels: bool = True) -> Path:
    """Images whose label is the argmax of a fixed random linear map: learnable."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((n, 1, 8, 8)).astype(np.float32)
    y = (x.reshape(n, -1) @ rng.standard_normal((64, 10))).argmax(axis=1)
    p = tmp_path / ("train.npz" if labels else "unlabelled.npz")
    np.savez(p, image=x, **({"labels": y} if labels else {}))
    return p


def _cfg(data: Path, **kw) -> finetune.Config:
    return finetune.Config(data=str(data), **{"epochs": 3, "lr": 3e-3, **kw})


def _run(model, cfg, seed=0):
    return finetune.apply(model, cfg, StepContext(seed=seed, original=model))


def _pruned(model):
    return prune.apply(model, prune.Config(sparsity=0.8, scope="global"), StepContext())[0]


def test_it_learns_and_does_not_mutate_its_input(tmp_path):
    model = make_mlp()
    before = stored_arrays(model)
    new, rec = _run(model, _cfg(_data(tmp_path, 2000), epochs=5, lr=1e-2))
    for name, arrays in before.items():
        for k, a in arrays.items():
            np.testing.assert_array_equal(model.tensors[name].arrays()[k], a)
    epochs = rec.details["epochs"]
    assert epochs[-1]["loss"] < epochs[0]["loss"]
    assert epochs[-1]["val_accuracy"] > 0.5                   # chance: 0.1
    assert rec.to_dict()["details"]["best_epoch"] is not None


def test_same_seed_same_weights_other_seed_other_weights(tmp_path):
    model, cfg = make_mlp(), _cfg(_data(tmp_path), epochs=1)
    a, b, c = _run(model, cfg)[0], _run(model, cfg)[0], _run(model, cfg, seed=1)[0]
    for name in model.tensors:
        np.testing.assert_array_equal(a.tensors[name].decode(), b.tensors[name].decode())
    assert any(not np.array_equal(a.tensors[n].decode(), c.tensors[n].decode())
               for n in model.tensors)


def test_pruned_weights_stay_exactly_zero(tmp_path):
    model = _pruned(make_mlp())
    new, _ = _run(model, _cfg(_data(tmp_path), weight_decay=0.01, optimizer="adamw"))
    for name, t in model.tensors.items():
        if isinstance(t, SparseTensor):
            n = new.tensors[name]
            assert isinstance(n, SparseTensor) and n.layout == t.layout
            np.testing.assert_array_equal(n.decode() == 0, t.decode() == 0)
            assert not np.array_equal(n.decode(), t.decode())


def test_quantized_layers_stay_on_their_grid(tmp_path):
    q = quantize.apply(make_mlp(), quantize.Config(), StepContext())[0]
    qp = quantize.apply(_pruned(make_mlp()), quantize.Config(), StepContext())[0]
    for model in (q, qp):
        new, _ = _run(model, _cfg(_data(tmp_path)))
        for name, t in model.tensors.items():
            n = new.tensors[name]
            if isinstance(t, QuantizedTensor) or getattr(t, "scale", None) is not None:
                assert type(n) is type(t)
                np.testing.assert_array_equal(n.scale, t.scale)
                codes = n.codes if isinstance(n, QuantizedTensor) else n.values
                assert codes.dtype == np.int8 and not np.array_equal(
                    codes, t.codes if isinstance(t, QuantizedTensor) else t.values)


def test_codebooks_keep_their_indices(tmp_path):
    rng = np.random.default_rng(0)
    model = make_mlp()
    tensors = dict(model.tensors)
    for name in ("fc1.weight", "fc2.weight"):
        shape = model.tensors[name].shape
        tensors[name] = CodebookTensor.from_index(shape, rng.integers(0, 16, np.prod(shape)),
                                                  np.linspace(-0.5, 0.5, 16))
    model = model.replace(tensors=tensors)
    new, _ = _run(model, _cfg(_data(tmp_path)))
    for name in ("fc1.weight", "fc2.weight"):
        old, n = model.tensors[name], new.tensors[name]
        np.testing.assert_array_equal(n.index(), old.index())
        assert len(np.unique(n.decode())) <= 16
        assert not np.array_equal(n.codebook, old.codebook)


def test_early_stop_and_best_restore(tmp_path):
    model = make_mlp()
    new, rec = _run(model, _cfg(_data(tmp_path), epochs=8, lr=0.5, optimizer="sgd",
                                patience=1))
    assert any("early stop" in n for n in rec.notes)
    assert any("restored the best epoch" in n for n in rec.notes)
    assert len(rec.details["epochs"]) < 8


def test_ctrl_c_keeps_the_best_epoch(tmp_path, monkeypatch):
    model = make_mlp()
    calls = {"n": 0}
    real = Trainer.train_step

    def interrupt(self, *a):
        calls["n"] += 1
        if calls["n"] == 12:                  # epoch 2 (9 steps per epoch)
            raise KeyboardInterrupt
        return real(self, *a)

    monkeypatch.setattr(Trainer, "train_step", interrupt)
    new, rec = _run(model, _cfg(_data(tmp_path), epochs=3))
    assert any("interrupted" in n for n in rec.notes)
    assert rec.details["best_epoch"] == 1 and len(rec.details["epochs"]) == 1
    monkeypatch.setattr(Trainer, "train_step", real)
    one, _ = _run(model, _cfg(_data(tmp_path), epochs=1))
    for name in model.tensors:                # the kept weights are those after epoch 1
        np.testing.assert_allclose(new.tensors[name].decode(), one.tensors[name].decode())


def test_unlabelled_data_is_distilled(tmp_path):
    model = _pruned(make_mlp())
    new, rec = finetune.apply(model, _cfg(_data(tmp_path, labels=False)),
                              StepContext(original=make_mlp()))
    assert any("no labels" in n for n in rec.notes)
    ep = rec.details["epochs"]
    assert ep[-1]["loss"] < ep[0]["loss"] and ep[0]["accuracy"] is None


def test_language_model_with_distillation(tmp_path):
    rng = np.random.default_rng(0)
    p = tmp_path / "ids.npz"
    np.savez(p, ids=rng.integers(0, 20, (64, 12)))
    model = make_lm()
    cfg = finetune.Config(data=str(p), epochs=2, batch_size=16, lr=1e-2,
                          distill={"temperature": 2.0, "alpha": 0.3})
    new, rec = _run(model, cfg)
    ep = rec.details["epochs"]
    assert ep[-1]["loss"] < ep[0]["loss"] and ep[0]["accuracy"] is not None


def test_steps_and_layer_selection(tmp_path):
    model = make_mlp()
    new, rec = _run(model, _cfg(_data(tmp_path), steps=5, exclude=["fc1"], validation=0.0))
    assert rec.details["steps"] == 5
    np.testing.assert_array_equal(new.tensors["fc1.weight"].decode(),
                                  model.tensors["fc1.weight"].decode())
    assert {x["tensor"] for x in rec.layers} == {"fc2.weight", "fc2.bias", "fc3.weight",
                                                 "fc3.bias"}


def test_pipeline_resolves_and_checks_the_data_file(tmp_path):
    _data(tmp_path)
    yaml = write_yaml(tmp_path / "p.yaml", "steps:\n  - finetune: {data: train.npz, "
                      "distill: {temperature: 3.0}}\n")
    p = load_pipeline(yaml)
    assert p.steps[0].config.data == str(tmp_path / "train.npz")
    check_against_model(p, make_mlp())
    bad = write_yaml(tmp_path / "q.yaml", "steps:\n  - finetune: {data: none.npz}\n")
    with pytest.raises(ConfigError, match="not found"):
        check_against_model(load_pipeline(bad), make_mlp())
    typo = write_yaml(tmp_path / "r.yaml", "steps:\n  - finetune: {data: train.npz, "
                      "distill: {temprature: 3}}\n")
    with pytest.raises(ConfigError, match="did you mean 'temperature'"):
        load_pipeline(typo)


def test_idx_files(tmp_path):
    images = np.random.default_rng(0).integers(0, 255, (5, 8, 8), dtype=np.uint8)
    header = bytes([0, 0, 8, 3]) + np.array([5, 8, 8], ">i4").tobytes()
    (tmp_path / "t-images-idx3-ubyte.gz").write_bytes(gzip.compress(header + images.tobytes()))
    (tmp_path / "t-labels-idx1-ubyte").write_bytes(
        bytes([0, 0, 8, 1]) + np.array([5], ">i4").tobytes() + bytes([1, 2, 3, 4, 5]))
    np.testing.assert_array_equal(read_idx(tmp_path / "t-images-idx3-ubyte.gz"), images)
    data = load_training_data(tmp_path / "t-images-idx3-ubyte.gz", make_mlp())
    assert data.inputs["image"].shape == (5, 1, 8, 8)
    assert data.labels.tolist() == [1, 2, 3, 4, 5]
