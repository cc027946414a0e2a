"""The finetune step: recover accuracy lost to compression by training in NumPy, without
undoing the compression (masks, quantization grids, shared codebooks hold; optcli/training/).

    steps:
      - prune: {method: magnitude, sparsity: 0.9, scope: global}
      - finetune: {data: train.npz, epochs: 3, batch_size: 64, optimizer: adam, lr: 1.0e-3,
                   schedule: cosine, warmup: 100, distill: {temperature: 2.0}}

Loss: cross-entropy on `labels` (next-token cross-entropy for a language model), plus with
`distill` knowledge distillation from the uncompressed model (the model before the pipeline;
Hinton et al. 2015): alpha * T^2 KL(teacher_T || student_T) + (1 - alpha) * labels. Data
without labels is distilled only. Optimizers SGD (momentum, Nesterov), Adam, AdamW (Kingma &
Ba 2015; Loshchilov & Hutter 2019); schedules constant, step, exponential, linear, cosine,
each after a linear warm-up. A seeded `validation` fraction drives early stopping
(`patience`) and the best epoch is restored. Ctrl-C stops training and keeps the best (or
last completed) epoch. Every trainable tensor of the selected layers trains (weights, biases,
norm scales, embeddings); batchnorm statistics and preprocessing constants stay fixed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from optcli.errors import ConfigError, StepError
from optcli.graph import Model
from optcli.ops import OPS
from optcli.params import build, param
from optcli.steps.base import StepContext, StepRecord, select_layers
from optcli.training.dataset import load_training_data
from optcli.training.grads import differentiable
from optcli.training.objective import Objective
from optcli.training.optimizers import OPTIMIZERS
from optcli.training.parametrize import parametrize
from optcli.training.schedules import SCHEDULES
from optcli.training.trainer import Trainer

DESCRIPTION = ("Recovery fine-tuning in NumPy (SGD/Adam/AdamW, LR schedules, distillation); "
               "masks, quantization grids (QAT) and codebooks hold.")

DATA_FIELDS = ("data",)          # paths config.py resolves against the pipeline's folder
TRAIN_OPS = tuple(op for op, spec in OPS.items() if "weight" in spec.weights)


def _nonneg(v: Any) -> bool:
    return v >= 0


@dataclass(frozen=True)
class Distill:
    temperature: float = param(2.0, "softmax temperature T of the soft targets",
                               check=lambda v: v > 0, check_doc="> 0")
    alpha: float = param(0.5, "weight of the distillation term (1 - alpha: the labels)",
                         check=lambda v: 0 <= v <= 1, check_doc="0 <= alpha <= 1")


@dataclass(frozen=True)
class Config:
    data: str = param(None, "training data: an .npz (model inputs + labels) or an IDX "
                      "images file", type=str, required=True)
    epochs: int = param(1, "passes over the training data", check=lambda v: v >= 1,
                        check_doc=">= 1")
    steps: int = param(0, "optimizer steps instead of epochs (0: use epochs)", check=_nonneg,
                       check_doc=">= 0")
    batch_size: int = param(64, "samples per step", check=lambda v: v >= 1, check_doc=">= 1")
    optimizer: str = param("adam", "update rule", choices=OPTIMIZERS)
    lr: float = param(1e-3, "base learning rate", check=lambda v: v > 0, check_doc="> 0")
    momentum: float = param(0.9, "sgd momentum", check=lambda v: 0 <= v < 1,
                            check_doc="0 <= momentum < 1")
    nesterov: bool = param(False, "sgd: Nesterov momentum")
    weight_decay: float = param(0.0, "decay (decoupled for adamw, added to the gradient "
                                "otherwise)", check=_nonneg, check_doc=">= 0")
    l1: float = param(0.0, "L1 penalty l1 * sum |w|", check=_nonneg, check_doc=">= 0")
    l2: float = param(0.0, "L2 penalty l2 / 2 * sum w^2", check=_nonneg, check_doc=">= 0")
    schedule: str = param("constant", "learning-rate schedule after warm-up",
                          choices=SCHEDULES)
    warmup: int = param(0, "steps of linear warm-up", check=_nonneg, check_doc=">= 0")
    step_size: int = param(0, "step/exponential: steps per decay by gamma (0: one epoch)",
                           check=_nonneg, check_doc=">= 0")
    gamma: float = param(0.1, "step/exponential decay factor", check=lambda v: 0 < v <= 1,
                         check_doc="0 < gamma <= 1")
    validation: float = param(0.1, "held-out fraction for early stopping and best epoch",
                              check=lambda v: 0 <= v < 1, check_doc="0 <= validation < 1")
    patience: int = param(0, "stop after this many epochs without validation improvement "
                          "(0: never)", check=_nonneg, check_doc=">= 0")
    distill: dict = param(None, "knowledge distillation from the uncompressed model: "
                          "{temperature: 2.0, alpha: 0.5}", type=dict)
    samples: int = param(None, "use only the first N samples", type=int,
                         check=lambda v: v >= 1, check_doc=">= 1")
    layers: list = param(["*"], "glob patterns of layer (node) names to train")
    exclude: list = param([], "glob patterns of layer names to keep frozen")


def distill_config(config: Config) -> Distill | None:
    return None if config.distill is None else build(Distill, config.distill, "distill",
                                                     "finetune", {})


def check(config: Config) -> str | None:
    try:
        distill_config(config)
    except ConfigError as e:
        return str(e).split(": ", 1)[1]
    return None


def check_data(config: Config, model: Model) -> None:
    """Before any compute: the training data exists and fits the model."""
    load_training_data(config.data, model)


def apply(model: Model, config: Config, context: StepContext) -> tuple[Model, StepRecord]:
    record = StepRecord("finetune", {})
    data = load_training_data(config.data, model).head(config.samples)
    names = trainable_tensors(model, config)
    if not names:
        raise StepError("finetune: no trainable tensor in the selected layers")
    params = {n: parametrize(model.tensors[n]) for n in names}
    frozen = {k: _frozen(t) for k, t in model.tensors.items() if k not in params}
    teacher, objective = _teacher_and_objective(model, config, data, context, record)
    trainer = Trainer(model, params, frozen, objective, teacher, config, context.rng(7),
                      context.progress)
    res = trainer.fit(data)
    tensors = dict(model.tensors)
    for n, p in params.items():
        tensors[n] = p.store()
        record.layers.append({"tensor": n, "encoding": tensors[n].describe(),
                              "change": _relative_change(model.tensors[n], tensors[n])})
    record.notes.extend(res.notes)
    record.details = {"epochs": res.history, "best_epoch": res.best_epoch,
                      "steps": res.steps, "samples": len(data), "teacher": teacher is not None}
    return model.replace(tensors=tensors), record


def trainable_tensors(model: Model, config: Config) -> list[str]:
    """Float tensors read through a weight role of a selected layer (not batchnorm stats)."""
    out: list[str] = []
    for node in select_layers(model, config.layers, config.exclude, TRAIN_OPS):
        for role in OPS[node.op].weights:
            name = node.inputs.get(role)
            if (differentiable(node.op, role) and name in model.tensors and name not in out
                    and model.tensors[name].dtype.startswith("float")):
                out.append(name)
    return out


def _frozen(t) -> np.ndarray:
    t = t.resident()
    data = getattr(t, "data", None)
    return data if data is not None and data.dtype.kind in "iu" else t.decode()


def _teacher_and_objective(model: Model, config: Config, data, context: StepContext,
                           record: StepRecord):
    """The distillation teacher (the original model when its outputs match) and the loss."""
    kind = model.task.get("kind")
    d = distill_config(config)
    labelled = kind == "language_model" or (kind == "classification" and data.labels is not None)
    if d is None and not labelled:
        d = Distill()
        record.notes.append("no labels: distilling from the uncompressed model (T = 2)")
    if d is None:
        return None, Objective(kind, None)
    orig = context.original
    same = orig is not None and [(v.name, v.shape) for v in orig.graph.outputs] == \
        [(v.name, v.shape) for v in model.graph.outputs]
    if orig is not None and not same:
        record.notes.append("teacher: the step's input (the original model's outputs differ)")
    return (orig if same else model), Objective(kind, d.temperature,
                                               d.alpha if labelled else 1.0)


def _relative_change(old, new) -> float:
    a, b = old.decode(), new.decode()
    return round(float(np.linalg.norm(b - a) / max(np.linalg.norm(a), 1e-30)), 6)
