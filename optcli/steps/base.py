"""What every step shares: the context it runs in, the record it returns, layer selection.

A step module exposes `Config` (a frozen dataclass: the YAML parameters, each field with a
`doc` in its metadata and optional `choices`/`check`), `DESCRIPTION` (one line) and
`apply(model, config, context) -> (Model, StepRecord)`. `apply` never mutates its input model
and never prints.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from optcli.graph import Model, Node
from optcli.progress import NoProgress, Progress

# Ops whose `weight` a compression step may rewrite.
LAYER_OPS = ("linear", "conv2d")


@dataclass
class StepContext:
    """What a step may use besides the model: a seeded RNG, (lazily) calibration data, the
    model before the pipeline (`original`, a distillation teacher) and a progress hook."""

    seed: int = 0
    calibration: Callable[[], dict[str, np.ndarray]] | None = None
    original: Model | None = None
    progress: Progress = field(default_factory=NoProgress)

    def rng(self, salt: int = 0) -> np.random.Generator:
        return np.random.default_rng([self.seed, salt])


@dataclass
class StepRecord:
    """What a step did: per-layer changes and notes, for the report."""

    step: str
    config: dict[str, Any]
    seconds: float = 0.0
    layers: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    round: str = ""          # '2/4' when the step ran inside a gradual block
    details: dict[str, Any] = field(default_factory=dict)   # step-specific, e.g. epochs

    def to_dict(self) -> dict[str, Any]:
        return {"step": self.step, "config": self.config, "seconds": round(self.seconds, 4),
                "layers": self.layers, "notes": self.notes} | (
                    {"round": self.round} if self.round else {}) | (
                    {"details": self.details} if self.details else {})


def select_layers(model: Model, layers: list[str], exclude: list[str],
                  ops: tuple[str, ...] = LAYER_OPS) -> list[Node]:
    """Nodes of the given ops whose names match any `layers` glob and no `exclude` glob."""
    out = []
    for n in model.graph.nodes:
        if n.op not in ops or not isinstance(n.inputs.get("weight"), str):
            continue
        if n.inputs["weight"] not in model.tensors:
            continue
        if any(fnmatch.fnmatchcase(n.name, p) for p in layers) and not any(
                fnmatch.fnmatchcase(n.name, p) for p in exclude):
            out.append(n)
    return out


def input_groups(nodes: list[Node]) -> list[list[Node]]:
    """The nodes in groups that read one input value, in the order the groups first appear
    (q/k/v together, gate/up together): the unit of sequential calibration."""
    groups: dict[str, list[Node]] = {}
    for n in nodes:
        groups.setdefault(n.inputs["x"], []).append(n)
    return list(groups.values())


def selector_ops(config: object) -> tuple[str, ...]:
    """The ops a step's `layers:`/`exclude:` globs name: layers, and embedding tables when
    the step takes them (quantize's `embeddings: true`)."""
    return (*LAYER_OPS, "embedding") if getattr(config, "embeddings", False) else LAYER_OPS


def unmatched_selectors(model: Model, patterns: list[str],
                        ops: tuple[str, ...] = LAYER_OPS) -> list[str]:
    """The globs in `patterns` that match no layer of the given ops (a config error)."""
    names = [n.name for n in model.graph.nodes if n.op in ops]
    return [p for p in patterns if not any(fnmatch.fnmatchcase(nm, p) for nm in names)]
