"""The library behind every command: one function per command, each returning a plain report
dict (JSON-ready). The CLI only parses arguments, calls one of these and renders the result."""

from __future__ import annotations

import collections
import time
from pathlib import Path
from typing import Any

import numpy as np

from optcli.atomic import check_output_path, write_bytes_atomic
from optcli.bench import measure, profile_ops
from optcli.config import check_against_model, load_pipeline
from optcli.data import load_dataset
from optcli.errors import InputError
from optcli.evaluate import evaluate
from optcli.feeds import batch_feeds
from optcli.io import load_model, save_model, write_npz_atomic
from optcli.parallel.resolve import ParallelOptions
from optcli.parallel.session import executing, for_evaluate, in_order, ran
from optcli.params import as_dict, build, describe
from optcli.progress import NoProgress, Progress
from optcli.runtime import Runtime
from optcli.sizes import layer_sizes, total_bytes, total_params
from optcli.steps import STEPS
from optcli.text.evaluate_text import data_kind, eval_text
from optcli.threads import blas_threads


def import_model(source: str | Path, out_path: str | Path, *, arch: str | Path | None = None,
                 force: bool = False) -> dict[str, Any]:
    from optcli.interop.importer import import_model as do_import
    source, out_path = Path(source), Path(out_path)
    check_output_path(out_path, force=force, protect=(source,))
    t0 = time.perf_counter()
    kind, m = do_import(source, None if arch is None else Path(arch))
    seconds = time.perf_counter() - t0
    size = save_model(m, out_path, force=force, protect=(source,))
    return {"kind": "import", "source": str(source), "format": kind, "output": str(out_path),
            "name": m.name, "task": m.task.get("kind"), "tensors": len(m.tensors),
            "nodes": len(m.graph.nodes), "params": total_params(m), "bytes": size,
            "seconds": seconds}


def export_model(model_path: str | Path, out_path: str | Path, *, to: str = "onnx",
                 opset: int = 17, force: bool = False) -> dict[str, Any]:
    from optcli.interop.onnx_export import export_onnx
    model_path, out_path = Path(model_path), Path(out_path)
    check_output_path(out_path, force=force, protect=(model_path,))
    m = load_model(model_path)
    proto = export_onnx(m, opset=opset)
    size = write_bytes_atomic(out_path, proto.SerializeToString(), force=force,
                              protect=(model_path,))
    int8 = sum(1 for t in proto.graph.initializer if t.data_type == 3)   # TensorProto.INT8
    return {"kind": "export", "model": str(model_path), "to": to, "output": str(out_path),
            "opset": opset, "nodes": len(proto.graph.node),
            "initializers": len(proto.graph.initializer), "int8_initializers": int8,
            "bytes": size, "model_bytes": model_path.stat().st_size}


def inspect_model(model_path: str | Path) -> dict[str, Any]:
    path = Path(model_path)
    m = load_model(path)
    vi = lambda v: {"name": v.name, "shape": list(v.shape), "dtype": v.dtype,  # noqa: E731
                    "meaning": v.meaning}
    return {
        "kind": "inspect", "path": str(path), "name": m.name, "task": m.task,
        "inputs": [vi(v) for v in m.graph.inputs], "outputs": [vi(v) for v in m.graph.outputs],
        "nodes": len(m.graph.nodes),
        "ops": dict(collections.Counter(n.op for n in m.graph.nodes)),
        "params": total_params(m),
        "nonzeros": sum(t.nonzeros for t in m.tensors.values()),
        "memory_bytes": total_bytes(m), "disk_bytes": path.stat().st_size,
        "layers": [r.to_dict() for r in layer_sizes(m)], "provenance": m.provenance,
    }


def run_model(model_path: str | Path, input_path: str | Path, out_path: str | Path, *,
              batch_size: int = 256, force: bool = False, weights: str = "auto",
              parallel: ParallelOptions | None = None,
              progress: Progress = NoProgress()) -> dict[str, Any]:
    model_path, out_path = Path(model_path), Path(out_path)
    m = load_model(model_path)
    data = load_dataset(input_path, m)
    with executing(m, parallel, weights) as rt:
        t0 = time.perf_counter()
        parts: dict[str, list[np.ndarray]] = collections.defaultdict(list)
        total = (len(data) + batch_size - 1) // batch_size
        batches = progress.track(data.batches(batch_size), total, "run")
        for out in in_order(rt, (feeds for feeds, _ in batches)):
            for k, v in out.items():
                parts[k].append(v)
        plan_ran = ran(rt)
    outputs = {k: np.concatenate(v) for k, v in parts.items()}
    seconds = time.perf_counter() - t0
    size = write_npz_atomic(out_path, outputs, force=force,
                            protect=(model_path, Path(input_path)))
    return {"kind": "run", "model": str(model_path), "input": str(input_path),
            "output": str(out_path), "samples": len(data), "seconds": seconds,
            "outputs": {k: {"shape": list(v.shape), "dtype": v.dtype.name}
                        for k, v in outputs.items()}, "bytes": size, **plan_ran}


def eval_model(model_path: str | Path, data_path: str | Path, *, metric: str = "auto",
               reference_path: str | Path | None = None, batch_size: int = 256,
               samples: int | None = None, weights: str = "auto", window: int | None = None,
               stride: int | None = None, parallel: ParallelOptions | None = None,
               progress: Progress = NoProgress()) -> dict[str, Any]:
    m = load_model(model_path)
    ref = load_model(reference_path) if reference_path else None
    head = {"kind": "eval", "model": str(model_path), "data": str(data_path),
            "reference": None if ref is None else str(reference_path)}
    if data_kind(Path(data_path)) != "npz":
        return {**head, **eval_text(m, Path(data_path), reference=ref, window=window,
                                    stride=stride, max_tokens=samples, progress=progress)}
    data = load_dataset(data_path, m, samples)
    with executing(m, parallel, weights) as rt:
        res = evaluate(m, data, metric, reference=ref, batch_size=batch_size,
                       progress=progress, runtime=for_evaluate(rt, data, batch_size))
        plan_ran = ran(rt)
    return {**head, **res.to_dict(), **plan_ran}


def bench_model(model_path: str | Path, *, batches: list[int], threads: int | None = None,
                reference_path: str | Path | None = None, data_path: str | Path | None = None,
                repeats: int = 30, warmup: int = 3, seq: int = 16,
                profile: bool = False, weights: str = "auto",
                parallel: ParallelOptions | None = None) -> dict[str, Any]:
    m = load_model(model_path)
    ref = load_model(reference_path) if reference_path else None
    data = load_dataset(data_path, m) if data_path else None
    rows = []
    with blas_threads(threads), executing(m, parallel, weights, seq) as first:
        runtimes = [first] + ([Runtime(ref, weights=weights)] if ref is not None else [])
        for b in batches:
            feeds = batch_feeds(m, b, data, seq=seq)
            fns = [lambda rt=rt: rt.run(feeds) for rt in runtimes]
            timings = measure(fns, b, repeats, warmup)
            row = {"batch": b, "model": timings[0].to_dict()}
            if ref is not None:
                row["reference"] = timings[1].to_dict()
                row["speedup"] = timings[1].median_ms / timings[0].median_ms
            if profile:
                rt = runtimes[0]
                row["profile_ms"] = profile_ops(lambda p: rt.run(feeds, profile=p), repeats)
            rows.append(row)
    return {"kind": "bench", "model": str(model_path), "threads": threads, "weights": weights,
            "plan": runtimes[0].plan(),
            "reference": None if ref is None else str(reference_path), "results": rows,
            "best": best_throughput(rows), **ran(runtimes[0])}


def best_throughput(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The batch with the highest throughput, and the latency it costs against the smallest
    batch measured (a batch of b waits for b requests and takes longer to run)."""
    best = max(rows, key=lambda r: r["model"]["throughput_per_s"])
    first = min(rows, key=lambda r: r["batch"])
    return {"batch": best["batch"], "throughput_per_s": best["model"]["throughput_per_s"],
            "median_ms": best["model"]["median_ms"],
            "latency_vs_smallest": best["model"]["median_ms"] / first["model"]["median_ms"],
            "throughput_vs_smallest": best["model"]["throughput_per_s"]
            / first["model"]["throughput_per_s"], "smallest_batch": first["batch"]}


def validate_config(config_path: str | Path, model_path: str | Path | None = None
                    ) -> dict[str, Any]:
    pipeline = load_pipeline(config_path)
    if model_path is not None:
        model = load_model(model_path)
        check_against_model(pipeline, model)
        for section in (pipeline.calibration, pipeline.evaluation):
            if section is not None and section.data is not None:
                load_dataset(pipeline.resolve(section.data), model)   # keys, shapes, NaN
    return {"kind": "validate", "config": str(config_path),
            "model": None if model_path is None else str(model_path), "valid": True,
            "steps": [{"step": s.name, "path": s.path} for s in pipeline.steps]}


def finetune_model(model_path: str | Path, data_path: str | Path, out_path: str | Path, *,
                   options: dict[str, Any] | None = None, eval_path: str | Path | None = None,
                   seed: int = 0, force: bool = False,
                   progress: Progress = NoProgress()) -> dict[str, Any]:
    """The finetune step on its own; options are its YAML parameters (None = default)."""
    from optcli.steps import finetune
    from optcli.steps.base import StepContext
    model_path, out_path, data_path = Path(model_path), Path(out_path), Path(data_path)
    raw = {"data": str(data_path), **{k: v for k, v in (options or {}).items() if v is not None}}
    config = build(finetune.Config, raw, "finetune", "command line", {})
    problem = finetune.check(config)
    if problem:
        raise InputError(f"finetune: {problem}")
    protect = (model_path, data_path)
    check_output_path(out_path, force=force, protect=protect)
    model = load_model(model_path)
    model = model.replace(tensors={k: t.resident() for k, t in model.tensors.items()})
    finetune.check_data(config, model)
    ev = load_dataset(eval_path, model) if eval_path else None
    t0 = time.perf_counter()
    new, record = finetune.apply(model, config, StepContext(seed=seed, original=model,
                                                            progress=progress))
    record.seconds, record.config = time.perf_counter() - t0, as_dict(config)
    steps = list(model.provenance.get("steps", [])) + [{"step": "finetune",
                                                         "config": record.config}]
    new = new.replace(provenance={**new.provenance, "steps": steps})
    size = save_model(new, out_path, force=force, protect=protect)
    return {"kind": "finetune", "model": str(model_path), "data": str(data_path),
            "output": str(out_path), "seed": seed, "bytes": size, "step": record.to_dict(),
            "accuracy": None if ev is None else _before_after(model, new, ev, progress)}


def _before_after(model, new, data, progress: Progress) -> dict[str, Any]:
    before = evaluate(model, data, progress=progress)
    after = evaluate(new, data, progress=progress)
    return {"data": data.path, "metric": before.metric, "samples": before.samples,
            "before": before.value, "after": after.value}


def plan_model(model_path: str | Path, *, workers: int, memory_per_worker: str | None = None,
               batch: int = 256, seq: int = 16, measure: bool = False) -> dict[str, Any]:
    """The parallel planner's choice, predictions and extrapolation (optcli/parallel)."""
    from optcli.parallel.advise import plan_report
    from optcli.parallel.plan import parse_bytes
    memory = None if memory_per_worker is None else parse_bytes(memory_per_worker)
    return plan_report(load_model(model_path), workers, memory_per_worker=memory, batch=batch,
                       seq=seq, measure=measure, path=str(model_path))


def list_steps() -> dict[str, Any]:
    return {"kind": "steps", "steps": [
        {"name": name, "description": mod.DESCRIPTION, "params": describe(mod.Config)}
        for name, mod in STEPS.items()]}


SWEEP_BATCHES = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512]


def parse_batches(text: str) -> list[int]:
    """'1,32,256' -> [1, 32, 256]; 'sweep' -> powers of two from 1 to 512."""
    if text.strip() == "sweep":
        return list(SWEEP_BATCHES)
    try:
        out = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise InputError(f"--batch: expected comma-separated integers, got {text!r}") from None
    if not out or any(b <= 0 for b in out):
        raise InputError(f"--batch: expected positive integers, got {text!r}")
    return out
