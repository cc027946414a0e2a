"""The training objective of a batch: labels and/or distillation, by task.

    classification  (1 - alpha) CE(labels) + alpha T^2 KL(teacher_T || student_T)
    language_model  (1 - alpha) next-token CE(ids) + alpha T^2 KL over every position
    other outputs   MSE to the teacher's output (embeddings, regression)
Without labels (a classifier fine-tuned on unlabelled data) the soft term is the whole loss;
without distillation the hard term is. Accuracy is top-1 (next-token top-1 for LMs).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from optcli.training import losses


@dataclass(frozen=True)
class Objective:
    kind: str                      # the model's task kind
    temperature: float | None      # None: no distillation
    alpha: float = 0.5             # weight of the soft (distillation) term

    def targets(self, labels, feeds: dict[str, np.ndarray], input_name: str):
        """The hard targets of a batch: labels, the ids themselves for an LM, or None."""
        if self.kind == "language_model":
            return np.asarray(feeds[input_name])
        return labels if self.kind == "classification" else None

    def __call__(self, out: np.ndarray, targets, teacher) -> tuple[float, np.ndarray]:
        hard = soft = None
        if targets is not None:
            hard = (losses.lm_cross_entropy(out, targets) if self.kind == "language_model"
                    else losses.cross_entropy(out, targets))
        if teacher is not None:
            soft = (losses.mse(out, teacher) if self.kind not in ("classification",
                                                                  "language_model")
                    else losses.distillation(out, teacher, self.temperature))
        if hard is None or soft is None:
            return hard or soft
        a = self.alpha
        return (1 - a) * hard[0] + a * soft[0], (1 - a) * hard[1] + a * soft[1]

    def accuracy(self, out: np.ndarray, targets) -> float | None:
        if targets is None:
            return None
        if self.kind == "language_model":
            return losses.accuracy(out[:, :-1].reshape(-1, out.shape[-1]),
                                   targets[:, 1:].reshape(-1))
        return losses.accuracy(out, targets)
