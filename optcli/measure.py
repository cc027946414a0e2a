"""The before/after measurements of a compress report: accuracy, latency and the gates.

Accuracy: both models on the same data. With labels the metric is top-1 (before and after);
for a language model, perplexity; with neither, agreement of the compressed model with the
original (before = 1 by definition). `drop` is before - after for metrics where higher is
better, and after / before - 1 (relative increase) for perplexity.
Latency: both models timed interleaved in this process at the configured batch size.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from optcli.bench import measure
from optcli.config import EvaluationConfig, GatesConfig, LatencyConfig
from optcli.data import Dataset
from optcli.evaluate import HIGHER_IS_BETTER, evaluate, pick_metric
from optcli.feeds import batch_feeds
from optcli.graph import Model
from optcli.progress import Progress
from optcli.runtime import Runtime
from optcli.text.evaluate_text import eval_text


def accuracy_section(before: Model, after: Model, data: Dataset | Path | None,
                     ev: EvaluationConfig, progress: Progress) -> dict[str, Any] | None:
    """Before/after on an .npz Dataset, or on a text / pairs file (a Path)."""
    if data is None:
        return None
    if isinstance(data, Path):
        return _text_accuracy(before, after, data, ev, progress)
    metric = pick_metric(before, data, ev.metric, has_reference=True)
    if metric in ("agreement", "cosine"):
        b_value = 1.0
        res = evaluate(after, data, metric, reference=before, batch_size=ev.batch_size,
                       progress=progress)
        a_value, extra_b, extra_a = res.value, {}, res.extra
    else:   # the original runs once, as the reference: its metrics are the "before"
        ra = evaluate(after, data, metric, reference=before, batch_size=ev.batch_size,
                      progress=progress)
        b_value, a_value, extra_b, extra_a = ra.reference[metric], ra.value, ra.reference, ra.extra
    return _section(metric, b_value, a_value, len(data), data.path, extra_b, extra_a)


def _text_accuracy(before: Model, after: Model, path: Path, ev: EvaluationConfig,
                   progress: Progress) -> dict[str, Any]:
    """Perplexity (language models, text) or retrieval top-1 (encoders, pairs), both models
    on the same tokens; the original runs once, as the reference of the compressed one."""
    ra = eval_text(after, path, reference=before, max_tokens=ev.samples, progress=progress)
    metric = ra["metric"]
    b_value = ra[f"reference_{metric}"]
    extra_b = {k[len("reference_"):]: v for k, v in ra.items() if k.startswith("reference_")}
    return _section(metric, b_value, ra["value"], ra["samples"], str(path), extra_b, ra)


def _section(metric: str, b_value: float, a_value: float, samples: int, data: str,
             extra_b: dict, extra_a: dict) -> dict[str, Any]:
    higher = HIGHER_IS_BETTER[metric]
    drop = (b_value - a_value) if higher else (a_value / b_value - 1.0)
    return {"metric": metric, "before": b_value, "after": a_value, "delta": a_value - b_value,
            "drop": drop, "higher_is_better": higher, "samples": samples, "data": data,
            "details_before": extra_b, "details_after": extra_a}


def latency_section(before: Model, after: Model, cfg: LatencyConfig,
                    data: Dataset | None) -> dict[str, Any]:
    feeds = batch_feeds(before, cfg.batch, data)
    rb, ra = Runtime(before, weights=cfg.weights), Runtime(after, weights=cfg.weights)
    tb, ta = measure([lambda: rb.run(feeds), lambda: ra.run(feeds)], cfg.batch,
                     cfg.repeats, cfg.warmup)
    forms: dict[str, int] = {}
    for p in ra.plan():
        forms[p["form"]] = forms.get(p["form"], 0) + 1
    return {"batch": cfg.batch, "weights": cfg.weights,
            "before_ms": tb.median_ms, "after_ms": ta.median_ms,
            "speedup": tb.median_ms / ta.median_ms if ta.median_ms else 0.0,
            "before": tb.to_dict(), "after": ta.to_dict(),
            "resident_before_bytes": rb.resident_bytes(),
            "resident_after_bytes": ra.resident_bytes(), "execution_forms_after": forms}


def gates_section(gates: GatesConfig, report: Any) -> list[dict[str, Any]]:
    out = []
    if gates.max_accuracy_drop is not None:
        acc = report.accuracy
        value = None if acc is None else acc["drop"]
        out.append(_gate("max_accuracy_drop", gates.max_accuracy_drop, value,
                         value is not None and value <= gates.max_accuracy_drop))
    if gates.min_compression is not None:
        value = report.size["ratio"]
        out.append(_gate("min_compression", gates.min_compression, value,
                         value >= gates.min_compression))
    if gates.max_latency_ratio is not None:
        lat = report.latency
        value = lat["after_ms"] / lat["before_ms"]
        out.append(_gate("max_latency_ratio", gates.max_latency_ratio, value,
                         value <= gates.max_latency_ratio))
    return out


def _gate(name: str, limit: float, value: float | None, passed: bool) -> dict[str, Any]:
    return {"gate": name, "limit": limit, "value": value, "passed": bool(passed)}
