"""Accuracy of a model on a dataset, and its agreement with a reference model.

Metrics are accumulated batch by batch, so a language model's [B, T, V] logits are never
held for the whole dataset:
- top1 / top5: fraction of samples whose label is among the k largest logits.
- perplexity (language models): exp(mean next-token cross-entropy), predicting ids[:, 1:]
  from logits[:, :-1].
- agreement (with a reference model): top-1 agreement of the argmax (classification and LM),
  mean cosine of the outputs, mean KL(reference || model) of the softmax distributions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from optcli.data import Dataset
from optcli.errors import DataError
from optcli.graph import Model
from optcli.progress import NoProgress, Progress
from optcli.runtime import Runtime

HIGHER_IS_BETTER = {"top1": True, "top5": True, "agreement": True, "cosine": True,
                    "perplexity": False}


@dataclass
class EvalResult:
    metric: str
    value: float
    samples: int
    extra: dict[str, float] = field(default_factory=dict)
    reference: dict[str, float] = field(default_factory=dict)   # the reference's own metrics

    def to_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "value": self.value, "samples": self.samples,
                **self.extra}


def pick_metric(model: Model, data: Dataset, requested: str, has_reference: bool) -> str:
    """'auto' -> top1 with labels, perplexity for LMs, else agreement with the reference."""
    if requested != "auto":
        if requested in ("top1", "top5") and data.labels is None:
            raise DataError(f"{data.path}: metric '{requested}' needs a 'labels' array")
        return requested
    if model.task.get("kind") == "language_model":
        return "perplexity"
    if data.labels is not None and model.task.get("kind") == "classification":
        return "top1"
    return "agreement" if has_reference else "cosine"


def evaluate(model: Model, data: Dataset, metric: str = "auto", reference: Model | None = None,
             batch_size: int = 256, progress: Progress = NoProgress(),
             runtime: Runtime | None = None) -> EvalResult:
    metric = pick_metric(model, data, metric, reference is not None)
    if metric in ("agreement", "cosine") and reference is None:
        raise DataError(f"metric '{metric}' needs a reference model (--reference)")
    rt = runtime or Runtime(model)
    ref_rt = Runtime(reference) if reference is not None else None
    acc, ref_acc = _Accumulator(), _Accumulator()
    out_name = model.graph.outputs[0].name
    total = (len(data) + batch_size - 1) // batch_size
    for feeds, labels in progress.track(data.batches(batch_size), total, f"eval {model.name}"):
        y = rt.run(feeds)[out_name]
        acc.add_outputs(y, labels, feeds, model)
        if ref_rt is not None:       # one reference pass serves agreement and its own metrics
            ref_y = ref_rt.run(feeds)[reference.graph.outputs[0].name]
            acc.add_reference(y, ref_y)
            ref_acc.add_outputs(ref_y, labels, feeds, reference)
    extra = acc.summary()
    return EvalResult(metric, extra[metric], len(data), extra, ref_acc.summary())


class _Accumulator:
    """Running sums for every metric the data allows."""

    def __init__(self) -> None:
        self.n = 0
        self.sums: dict[str, float] = {}
        self.counts: dict[str, int] = {}

    def _add(self, key: str, total: float, count: int) -> None:
        self.sums[key] = self.sums.get(key, 0.0) + float(total)
        self.counts[key] = self.counts.get(key, 0) + int(count)

    def add_outputs(self, y: np.ndarray, labels: np.ndarray | None, feeds: dict,
                    model: Model) -> None:
        if labels is not None and y.ndim == 2:
            top = np.argsort(-y, axis=1)[:, :5]
            self._add("top1", (top[:, 0] == labels).sum(), len(labels))
            self._add("top5", (top == labels[:, None]).any(axis=1).sum(), len(labels))
        if model.task.get("kind") == "language_model":
            ids = feeds[model.graph.inputs[0].name]
            nll = -log_softmax(y[:, :-1].astype(np.float64))
            picked = np.take_along_axis(nll, ids[:, 1:, None].astype(np.int64), axis=-1)
            self._add("nll", picked.sum(), picked.size)

    def add_reference(self, y: np.ndarray, ref: np.ndarray) -> None:
        a, b = y.reshape(-1, y.shape[-1]), ref.reshape(-1, ref.shape[-1])
        self._add("agreement", (a.argmax(1) == b.argmax(1)).sum(), len(a))
        num = (a * b).sum(1)
        den = np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-30)
        self._add("cosine", (num / den).sum(), len(a))
        lp, lq = log_softmax(b.astype(np.float64)), log_softmax(a.astype(np.float64))
        self._add("kl", (np.exp(lp) * (lp - lq)).sum(), len(a))

    def summary(self) -> dict[str, float]:
        out = {k: self.sums[k] / max(self.counts[k], 1) for k in self.sums}
        if "nll" in out:
            out["perplexity"] = float(np.exp(out["nll"]))
        return out


def log_softmax(x: np.ndarray) -> np.ndarray:
    """Numerically stable log-softmax over the last axis."""
    m = x.max(axis=-1, keepdims=True)
    z = x - m
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
