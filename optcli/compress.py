"""`compress`: validate everything, apply the pipeline, measure before and after, write.

Order matters for the promises made to users: every check that needs no compute runs first
(pipeline, model, selectors, data files, output path); the output is staged to a verified
temporary file and only renamed into place once the report is complete; a failure or Ctrl-C
at any point leaves nothing at the output path and never touches the input.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from optcli.atomic import check_output_path
from optcli.config import check_against_model, load_pipeline
from optcli.data import Dataset, load_dataset
from optcli.io import file_sha256, load_model, stage_model
from optcli.measure import accuracy_section, gates_section, latency_section
from optcli.pipeline import run_steps
from optcli.progress import NoProgress, Progress
from optcli.report import CompressReport
from optcli.sizes import layer_sizes, total_bytes, total_params
from optcli.steps.base import StepContext
from optcli.text.evaluate_text import data_kind
from optcli.text.retrieval import text_dataset


def compress(model_path: str | Path, config_path: str | Path, out_path: str | Path, *,
             force: bool = False, seed: int | None = None,
             progress: Progress = NoProgress()) -> CompressReport:
    model_path, out_path = Path(model_path), Path(out_path)
    pipeline = load_pipeline(config_path)
    model = load_model(model_path)
    check_against_model(pipeline, model)
    check_output_path(out_path, force=force, protect=(model_path,))
    seed = pipeline.seed if seed is None else seed
    ev = pipeline.evaluation
    eval_data = _evaluation(pipeline, model)
    calib = _calibration(pipeline, model)
    model = model.replace(provenance={**model.provenance,
                                      "input_sha256": file_sha256(model_path)})
    context = StepContext(seed=seed, calibration=(lambda: calib.inputs) if calib else None,
                          original=model, progress=progress)
    new, records = run_steps(model, pipeline, context, progress)
    with stage_model(new, out_path, force=force, protect=(model_path,)) as staged:
        report = CompressReport(
            input=str(model_path), output=str(out_path), config=str(config_path), seed=seed,
            size=_size(model, new, model_path.stat().st_size, staged.size),
            layers=_layers(model, new), steps=[r.to_dict() for r in records],
            accuracy=accuracy_section(model, new, eval_data, ev, progress),
            latency=latency_section(model, new, pipeline.latency,
                                    eval_data if isinstance(eval_data, Dataset) else calib),
        )
        report.gates = gates_section(pipeline.gates, report)
        staged.commit()
    return report


def _evaluation(pipeline, model) -> Dataset | Path | None:
    """An .npz evaluation set loaded and checked now; a text or pairs file as its path."""
    ev = pipeline.evaluation
    if ev.data is None:
        return None
    path = pipeline.resolve(ev.data)
    if data_kind(path) != "npz":
        return path
    return load_dataset(path, model, ev.samples)


def _calibration(pipeline, model) -> Dataset | None:
    """The calibration set: an .npz of the model's inputs, or for a sentence encoder a .jsonl
    of query/document pairs whose texts it tokenizes (text.retrieval.text_dataset)."""
    c = pipeline.calibration
    if not c:
        return None
    path = pipeline.resolve(c.data)
    if data_kind(path) == "pairs":
        return text_dataset(model, path, c.samples)
    return load_dataset(path, model, c.samples)


def _size(before, after, disk_before: int, disk_after: int) -> dict[str, Any]:
    mb, ma = total_bytes(before), total_bytes(after)
    return {
        "before_bytes": disk_before, "after_bytes": disk_after,
        "ratio": disk_before / max(disk_after, 1),
        "memory_before_bytes": mb, "memory_after_bytes": ma, "memory_ratio": mb / max(ma, 1),
        "params": total_params(before),
        "nonzeros_before": sum(t.nonzeros for t in before.tensors.values()),
        "nonzeros_after": sum(t.nonzeros for t in after.tensors.values()),
    }


def _layers(before, after) -> list[dict[str, Any]]:
    """One row per layer of the input. A layer a step split in two (lowrank: `fc1.lr_in` then
    `fc1`) is counted with both parts; a removed layer has no row."""
    rows_before = layer_sizes(before)
    names_before = {r.layer for r in rows_before}
    parts: dict[str, list] = {}
    for a in layer_sizes(after):
        origin = a.layer if a.layer in names_before else _parent(a.layer, names_before)
        parts.setdefault(origin, []).append(a)
    rows = []
    for b in rows_before:
        got = parts.get(b.layer)
        if not got:
            continue
        nbytes = sum(a.bytes for a in got)
        rows.append({"layer": b.layer, "op": b.op, "shape": list(b.shape), "params": b.params,
                     "nonzeros_before": b.nonzeros, "nonzeros_after": sum(a.nonzeros for a in got),
                     "encoding_before": b.encoding,
                     "encoding_after": " + ".join(dict.fromkeys(a.encoding for a in got)),
                     "bytes_before": b.bytes, "bytes_after": nbytes,
                     "bits_per_weight_after": round(
                         8.0 * nbytes / max(sum(a.params for a in got), 1), 3),
                     **_kept_bits(nbytes, sum(a.index_bytes for a in got),
                                  sum(a.nonzeros for a in got)),
                     "ratio": b.bytes / max(nbytes, 1)})
    return rows


def _kept_bits(nbytes: int, index: int, kept: int) -> dict[str, float]:
    """Deep Compression's per-layer view: bits per kept weight spent on its value (codebook,
    scales and bias included) and on its position (Han, Mao, Dally 2016, Tables 2-5)."""
    return {"value_bits_per_kept": round(8.0 * (nbytes - index) / max(kept, 1), 3),
            "index_bits_per_kept": round(8.0 * index / max(kept, 1), 3)}


def _parent(layer: str, names: set[str]) -> str | None:
    """The input layer a new layer was split from ('fc1.lr_in' -> 'fc1'), if any."""
    while "." in layer:
        layer = layer.rsplit(".", 1)[0]
        if layer in names:
            return layer
    return None
