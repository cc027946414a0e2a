"""The pipeline YAML: parsed, fully validated, with paths resolved, before any compute.

    steps:                       # ordered; each item is {step_name: {params}}
      - prune: {method: magnitude, sparsity: 0.9, scope: global, exclude: [fc3]}
      - quantize: {bits: 8, granularity: channel}
    calibration: {data: ../sample_models/fashion_calib.npz, samples: 256}
    evaluation: {data: ../sample_models/fashion_eval.npz, metric: auto}
    latency: {batch: 1, repeats: 30}
    gates: {max_accuracy_drop: 0.01, min_compression: 4}
    seed: 0

Relative paths are resolved against the YAML file's folder. `check_against_model` adds the
checks that need the model: every layer selector must match a layer.
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from optcli.errors import ConfigError, InputError
from optcli.gradual import GradualConfig, schedule_problem, sparsity_at
from optcli.graph import Model
from optcli.params import build, param
from optcli.steps import STEPS
from optcli.steps.base import selector_ops, unmatched_selectors
from optcli.yamlsrc import load_yaml

METRICS = ("auto", "top1", "top5", "agreement", "cosine", "perplexity")


def _positive(v: Any) -> bool:
    return v > 0


@dataclass(frozen=True)
class CalibrationConfig:
    data: str = param(None, "an .npz of model inputs", type=str, required=True)
    samples: int = param(256, "how many samples to use", check=_positive, check_doc="> 0")


@dataclass(frozen=True)
class EvaluationConfig:
    data: str = param(None, "an .npz of model inputs (+ 'labels'); none = latency/size only",
                      type=str)
    metric: str = param("auto", "auto picks top1 (labels), perplexity (LM) or agreement",
                        choices=METRICS)
    samples: int = param(None, "use only the first N samples", type=int, check=_positive,
                         check_doc="> 0")
    batch_size: int = param(256, "evaluation batch size", check=_positive, check_doc="> 0")


@dataclass(frozen=True)
class LatencyConfig:
    batch: int = param(1, "batch size the latency is measured at", check=_positive,
                       check_doc="> 0")
    repeats: int = param(30, "timed runs per model", check=_positive, check_doc="> 0")
    warmup: int = param(3, "untimed runs first", check=lambda v: v >= 0, check_doc=">= 0")
    weights: str = param("auto", "auto: decode compressed weights once (fastest); compact: "
                         "keep them compressed while running (smallest)",
                         choices=("auto", "compact"))


@dataclass(frozen=True)
class GatesConfig:
    max_accuracy_drop: float = param(None, "fail if before - after exceeds this", type=float,
                                     check=lambda v: v >= 0, check_doc=">= 0")
    min_compression: float = param(None, "fail if size before/after is below this",
                                   type=float, check=_positive, check_doc="> 0")
    max_latency_ratio: float = param(None, "fail if latency after/before exceeds this",
                                     type=float, check=_positive, check_doc="> 0")


@dataclass(frozen=True)
class StepSpec:
    name: str
    config: Any
    path: str            # 'steps[1].quantize', for messages
    round: str = ""      # '2/4' inside a gradual block


@dataclass(frozen=True)
class Pipeline:
    steps: tuple[StepSpec, ...]
    calibration: CalibrationConfig | None = None
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    latency: LatencyConfig = field(default_factory=LatencyConfig)
    gates: GatesConfig = field(default_factory=GatesConfig)
    seed: int = 0
    source: str = "<pipeline>"
    base_dir: Path = Path(".")

    def resolve(self, rel: str | None) -> Path | None:
        return None if rel is None else (self.base_dir / rel)


SECTIONS = {"calibration": CalibrationConfig, "evaluation": EvaluationConfig,
            "latency": LatencyConfig, "gates": GatesConfig}
TOP_KEYS = ("steps", *SECTIONS, "seed", "description")


def load_pipeline(path: str | Path) -> Pipeline:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: pipeline file not found")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read: {e}") from None
    return parse_pipeline(text, str(path), path.parent)


def parse_pipeline(text: str, source: str, base_dir: Path) -> Pipeline:
    raw, marks = load_yaml(text, source)
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: the pipeline must be a mapping with a 'steps' list")
    _check_top_keys(raw, source, marks)
    sections = {k: build(cls, raw[k], k, source, marks) for k, cls in SECTIONS.items()
                if k in raw}
    seed = raw.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ConfigError(f"{source}:{marks.get('seed')}: 'seed' must be a non-negative integer")
    steps = tuple(spec for i, item in enumerate(_steps(raw, source))
                  for spec in _step_or_block(f"steps[{i}]", item, source, marks))
    for spec, nxt in zip(steps, steps[1:]):       # a step module may declare LAST = True
        if getattr(STEPS[spec.name], "LAST", False):
            raise ConfigError(f"{source}: '{spec.path}' must be the last step, but "
                              f"'{nxt.path}' follows it")
    for spec in steps:
        needs = getattr(STEPS[spec.name], "needs_calibration", None)
        if needs is not None and needs(spec.config) and "calibration" not in sections:
            raise ConfigError(f"{source}: '{spec.path}' needs a 'calibration:' section "
                              "(calibration: {data: FILE, samples: N})")
    steps = tuple(_resolve_data(spec, base_dir) for spec in steps)
    return Pipeline(steps=steps, seed=seed, source=source, base_dir=base_dir, **sections)


def _resolve_data(spec: StepSpec, base_dir: Path) -> StepSpec:
    """A step's data files (its module's DATA_FIELDS) resolved against the YAML's folder."""
    fields = getattr(STEPS[spec.name], "DATA_FIELDS", ())
    paths = {f: str(base_dir / getattr(spec.config, f)) for f in fields
             if getattr(spec.config, f) is not None}
    return dataclasses.replace(spec, config=dataclasses.replace(spec.config, **paths)) \
        if paths else spec


def _check_top_keys(raw: dict[str, Any], source: str, marks: dict[str, int]) -> None:
    for key in raw:
        if key not in TOP_KEYS:
            hint = difflib.get_close_matches(key, TOP_KEYS, n=1)
            did = f"did you mean '{hint[0]}'? " if hint else ""
            raise ConfigError(f"{source}:{marks.get(key)}: unknown key '{key}'; {did}"
                              f"valid keys: {', '.join(TOP_KEYS)}")


def _steps(raw: dict[str, Any], source: str) -> list[Any]:
    steps = raw.get("steps")
    if not isinstance(steps, list) or not steps:
        raise ConfigError(f"{source}: 'steps' must be a non-empty list of {{step_name: params}}")
    return steps


def _step_or_block(path: str, item: Any, source: str,
                   marks: dict[str, int]) -> list[StepSpec]:
    """One step, or the expanded rounds of a `gradual:` block (optcli/gradual.py)."""
    if isinstance(item, dict) and len(item) == 1 and "gradual" in item:
        return _gradual(f"{path}.gradual", item["gradual"], source, marks)
    return [_step(path, item, source, marks)]


def _gradual(path: str, raw: Any, source: str, marks: dict[str, int]) -> list[StepSpec]:
    cfg = build(GradualConfig, raw, path, source, marks)
    if not isinstance(cfg.steps, list) or not cfg.steps:
        raise ConfigError(f"{source}:{marks.get(path)}: '{path}.steps' must be a non-empty "
                          "list of {step_name: params}")
    inner = [_step(f"{path}.steps[{j}]", item, source, marks)
             for j, item in enumerate(cfg.steps)]
    prunes = [s for s in inner if s.name == "prune"]
    if not prunes:
        raise ConfigError(f"{source}:{marks.get(path)}: '{path}' has no prune step to schedule")
    for spec in prunes:
        problem = schedule_problem(spec.config) or (
            None if spec.config.sparsity > cfg.initial_sparsity
            else "its sparsity must exceed initial_sparsity")
        if problem:
            raise ConfigError(f"{source}:{marks.get(spec.path)}: '{spec.path}': {problem}")
    return [dataclasses.replace(
                spec, round=f"{r}/{cfg.rounds}",
                config=dataclasses.replace(spec.config, sparsity=sparsity_at(
                    r, cfg, spec.config.sparsity)) if spec.name == "prune" else spec.config)
            for r in range(1, cfg.rounds + 1) for spec in inner]


def _step(path: str, item: Any, source: str, marks: dict[str, int]) -> StepSpec:
    if not isinstance(item, dict) or len(item) != 1:
        raise ConfigError(f"{source}:{marks.get(path)}: '{path}' must be one "
                          "{step_name: {params}} mapping")
    (name, params), = item.items()
    if name == "gradual":
        raise ConfigError(f"{source}:{marks.get(path)}: '{path}': gradual blocks cannot nest")
    if name not in STEPS:
        hint = difflib.get_close_matches(name, [*STEPS, "gradual"], n=1)
        did = f"did you mean '{hint[0]}'? " if hint else ""
        raise ConfigError(f"{source}:{marks.get(path)}: unknown step '{name}' at '{path}'; "
                          f"{did}valid steps: {', '.join(STEPS)} (and gradual blocks)")
    config = build(STEPS[name].Config, params, f"{path}.{name}", source, marks)
    check = getattr(STEPS[name], "check", None)       # cross-parameter rules of the step
    problem = check(config) if check is not None else None
    if problem:
        raise ConfigError(f"{source}:{marks.get(path)}: '{path}.{name}': {problem}")
    return StepSpec(name, config, f"{path}.{name}")


def check_against_model(pipeline: Pipeline, model: Model) -> None:
    """Every `layers:`/`exclude:` glob must match a layer; data files must exist."""
    for spec in pipeline.steps:
        for key in ("layers", "exclude"):
            ops = selector_ops(spec.config)
            bad = unmatched_selectors(model, list(getattr(spec.config, key, [])), ops)
            if bad:
                layers = [n.name for n in model.graph.nodes if n.op in ops]
                shown = ", ".join(layers[:12]) + (" ..." if len(layers) > 12 else "")
                raise ConfigError(f"{pipeline.source}: '{spec.path}.{key}' pattern "
                                  f"{bad[0]!r} matches no layer of '{model.name}' "
                                  f"(layers: {shown})")
    for rel in (pipeline.calibration and pipeline.calibration.data,
                pipeline.evaluation.data):
        p = pipeline.resolve(rel)
        if p is not None and not p.is_file():
            raise ConfigError(f"{pipeline.source}: data file {p} not found")
    _check_step_data(pipeline, model)
    for spec in pipeline.steps:          # a step module may check its config against the model
        hook = getattr(STEPS[spec.name], "check_model", None)
        problem = hook(spec.config, model) if hook is not None else None
        if problem:
            raise ConfigError(f"{pipeline.source}: '{spec.path}': {problem}")


def _check_step_data(pipeline: Pipeline, model: Model) -> None:
    """Steps that read their own data files (DATA_FIELDS) check them now, once per file."""
    seen = set()
    for spec in pipeline.steps:
        for f in getattr(STEPS[spec.name], "DATA_FIELDS", ()):
            p = getattr(spec.config, f)
            if p is None or p in seen:
                continue
            seen.add(p)
            if not Path(p).is_file():
                raise ConfigError(f"{pipeline.source}: '{spec.path}.{f}': data file {p} "
                                  "not found")
            STEPS[spec.name].check_data(spec.config, model)
