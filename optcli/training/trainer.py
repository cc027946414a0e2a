"""The training loop: mini-batches, optimizer, schedule, validation, early stopping, best
checkpoint, Ctrl-C.

    for each epoch: shuffle (seeded) -> for each batch: forward (tape) -> loss -> backward ->
    gradient of each variable (parametrize.py) + L1/L2 -> optimizer step at lr(step) ->
    project (masks) ; then validate, keep the best variables, stop after `patience` epochs
    without improvement.
Validation is a seeded random `validation` fraction held out of the data; "best" is the
highest validation accuracy (lowest validation loss when there is no accuracy). With
validation the best epoch's weights are restored at the end. Ctrl-C (KeyboardInterrupt)
stops training between two numbers, never inside an update that is kept: the last
completed epoch (or the best one) is restored and a note says so.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from optcli.data import Dataset
from optcli.progress import NoProgress, Progress
from optcli.runtime import Runtime
from optcli.training.objective import Objective
from optcli.training.optimizers import make_optimizer, penalty
from optcli.training.schedules import Schedule
from optcli.training.tape import Tape

EVAL_BATCH = 256


@dataclass
class TrainResult:
    history: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int | None = None
    steps: int = 0
    notes: list[str] = field(default_factory=list)


class Trainer:
    """Trains `params` (tensor name -> parametrize.py object) of `student` in place."""

    def __init__(self, student, params: dict[str, Any], frozen: dict[str, np.ndarray],
                 objective: Objective, teacher, cfg, rng: np.random.Generator,
                 progress: Progress = NoProgress()):
        self.student, self.params, self.frozen = student, params, frozen
        self.objective, self.cfg, self.rng, self.progress = objective, cfg, rng, progress
        self.teacher = None if teacher is None else Runtime(teacher)
        self.tape = Tape(student, set(params))
        self.optimizer = make_optimizer(cfg.optimizer, cfg.momentum, cfg.weight_decay,
                                        cfg.nesterov)
        self.input_name = student.graph.inputs[0].name
        self.output_name = student.graph.outputs[0].name

    def weights(self) -> dict[str, np.ndarray]:
        return {**self.frozen, **{k: p.weight() for k, p in self.params.items()}}

    def snapshot(self) -> dict[str, np.ndarray]:
        return {k: p.variable.copy() for k, p in self.params.items()}

    def restore(self, snap: dict[str, np.ndarray]) -> None:
        for k, p in self.params.items():
            p.variable[...] = snap[k]

    def _teacher(self, feeds):
        if self.teacher is None:
            return None
        return self.teacher.run(feeds)[self.teacher.model.graph.outputs[0].name]

    def train_step(self, feeds, labels, lr: float) -> tuple[float, float | None]:
        """One update on one batch: (loss, accuracy) of the batch before the update."""
        out = self.tape.forward(feeds, self.weights())[self.output_name]
        targets = self.objective.targets(labels, feeds, self.input_name)
        loss, dout = self.objective(out, targets, self._teacher(feeds))
        dw = self.tape.backward({self.output_name: dout.astype(out.dtype, copy=False)})
        grads = {}
        for name, p in self.params.items():
            g = p.grad(dw[name]) if name in dw else np.zeros_like(p.variable)
            extra, pg = penalty(p.variable, self.cfg.l1, self.cfg.l2)
            loss += extra
            grads[name] = g if pg is None else g + pg
        self.optimizer.step({k: p.variable for k, p in self.params.items()}, grads, lr)
        for p in self.params.values():
            p.project()
        return loss, self.objective.accuracy(out, targets)

    def evaluate(self, data: Dataset, teacher_out: list) -> tuple[float, float | None]:
        """Mean loss and accuracy over `data` (teacher outputs per batch precomputed)."""
        weights, total, acc, n = self.weights(), 0.0, 0.0, 0
        for (feeds, labels), t_out in zip(data.batches(EVAL_BATCH), teacher_out):
            out = self.tape.forward(feeds, weights, record=False)[self.output_name]
            targets = self.objective.targets(labels, feeds, self.input_name)
            k = len(next(iter(feeds.values())))
            total += k * self.objective(out, targets, t_out)[0]
            a = self.objective.accuracy(out, targets)
            acc += k * (a or 0.0)
            n += k
        return total / n, (acc / n if targets is not None else None)

    def fit(self, data: Dataset) -> TrainResult:
        cfg, res = self.cfg, TrainResult()
        train, val = split(data, cfg.validation, self.rng)
        spe = math.ceil(len(train) / cfg.batch_size)                     # steps per epoch
        total = cfg.steps or cfg.epochs * spe
        schedule = Schedule(cfg.schedule, cfg.lr, total, cfg.warmup, cfg.step_size or spe,
                            cfg.gamma)
        val_teacher = [self._teacher(f) for f, _ in val.batches(EVAL_BATCH)] if val else []
        best, kept, since = None, self.snapshot(), 0
        try:
            for epoch in range(1, math.ceil(total / spe) + 1):
                row = self._epoch(train, epoch, spe, total, schedule, res)
                if val is not None:
                    row["val_loss"], row["val_accuracy"] = self.evaluate(val, val_teacher)
                res.history.append(_rounded(row))
                score = _score(row)
                if score is not None and (best is None or score > best):
                    best, res.best_epoch, since = score, epoch, 0
                    kept = self.snapshot()
                elif score is not None:
                    since += 1
                if score is None:
                    kept = self.snapshot()            # no validation: the last epoch is kept
                if cfg.patience and since >= cfg.patience:
                    res.notes.append(f"early stop after epoch {epoch}: no validation "
                                     f"improvement for {cfg.patience} epochs")
                    break
                if res.steps >= total:
                    break
        except KeyboardInterrupt:
            res.notes.append(f"interrupted (Ctrl-C) after {res.steps} steps; kept the "
                             + ("best epoch so far" if val is not None
                                else "last completed epoch"))
        self._finish(kept, val, res)
        return res

    def _finish(self, kept, val, res: TrainResult) -> None:
        """Restore the kept variables (best or last completed epoch) and say so."""
        self.restore(kept)
        last = len(res.history)
        if val is not None and res.best_epoch is not None and res.best_epoch != last:
            res.notes.append(f"restored the best epoch ({res.best_epoch} of {last})")

    def _epoch(self, train: Dataset, epoch: int, spe: int, total: int, schedule: Schedule,
               res: TrainResult) -> dict[str, Any]:
        t0, order = time.perf_counter(), self.rng.permutation(len(train))
        loss_sum, acc_sum, n, lr = 0.0, 0.0, 0, schedule.lr(res.steps)
        desc = f"finetune epoch {epoch}" + _summary(res.history[-1] if res.history else None)
        batches = (order[i:i + self.cfg.batch_size] for i in range(0, len(order),
                                                                    self.cfg.batch_size))
        for idx in self.progress.track(batches, min(spe, total - res.steps), desc):
            lr = schedule.lr(res.steps)
            feeds = {k: v[idx] for k, v in train.inputs.items()}
            labels = None if train.labels is None else train.labels[idx]
            loss, acc = self.train_step(feeds, labels, lr)
            loss_sum, acc_sum, n = loss_sum + loss * len(idx), acc_sum + (acc or 0) * len(idx), \
                n + len(idx)
            res.steps += 1
            if res.steps >= total:
                break
        return {"epoch": epoch, "loss": loss_sum / n, "accuracy": acc_sum / n if acc is not None
                else None, "lr": lr, "steps": res.steps, "seconds": time.perf_counter() - t0}


def split(data: Dataset, fraction: float, rng: np.random.Generator
          ) -> tuple[Dataset, Dataset | None]:
    """(train, validation): a seeded random `fraction` of the samples held out."""
    n_val = int(round(fraction * len(data)))
    if n_val == 0:
        return data, None
    perm = rng.permutation(len(data))

    def take(idx):
        idx = np.sort(idx)
        return Dataset(data.path, {k: v[idx] for k, v in data.inputs.items()},
                       None if data.labels is None else data.labels[idx])
    return take(perm[n_val:]), take(perm[:n_val])


def _score(row: dict[str, Any]) -> float | None:
    """Higher is better: validation accuracy, else minus validation loss; None: no validation."""
    if "val_loss" not in row:
        return None
    return row["val_accuracy"] if row["val_accuracy"] is not None else -row["val_loss"]


def _summary(last: dict[str, Any] | None) -> str:
    """The previous epoch's figures for the progress bar's label."""
    if last is None:
        return ""
    acc = "" if last["accuracy"] is None else f", acc {last['accuracy']:.4f}"
    val = "" if last.get("val_accuracy") is None else f", val acc {last['val_accuracy']:.4f}"
    return f" (loss {last['loss']:.4f}{acc}{val}, lr {last['lr']:.2e})"


def _rounded(row: dict[str, Any]) -> dict[str, Any]:
    return {k: round(v, 6) if isinstance(v, float) and k != "lr" else v for k, v in row.items()}
