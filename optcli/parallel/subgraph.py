"""Cutting a graph into segments that run as their own Runtime: pipeline stages and the
serial / sharded regions of a tensor-parallel graph.

A segment is a list of nodes; its inputs are the values it reads from outside (graph inputs
or earlier segments), its outputs the values it makes that a later segment or the graph
output needs. `drop` lists values no later segment reads, so activations are freed between
segments as the Runtime frees them within one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from optcli.graph import Graph, Model, Node, ValueInfo
from optcli.parallel.cost import Specs
from optcli.runtime import Runtime


@dataclass(frozen=True)
class Segment:
    nodes: tuple[Node, ...]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    drop: tuple[str, ...] = ()     # values free once this segment has run


def segments(model: Model, groups: list[list[Node]]) -> list[Segment]:
    """Segments for consecutive node groups (in topological order, covering the graph)."""
    graph_out = {vi.name for vi in model.graph.outputs}
    made = [{o for n in g for o in n.outputs} for g in groups]
    reads = [[v for n in g for v in n.input_names() if v not in model.tensors] for g in groups]
    out = []
    for i, g in enumerate(groups):
        later = {v for r in reads[i + 1:] for v in r}
        ins = tuple(dict.fromkeys(v for v in reads[i] if v not in made[i]))
        outs = tuple(v for n in g for v in n.outputs if v in later or v in graph_out)
        seen = {v for r in reads[:i + 1] for v in r}
        drop = tuple(v for v in seen if v not in later and v not in graph_out)
        out.append(Segment(tuple(g), ins, outs, drop))
    return out


def segment_model(model: Model, seg: Segment, specs: Specs) -> Model:
    """The segment as a model: its inputs declared with the probed rank and dtype (every dim
    a symbol, so any batch or sequence length is accepted), its weights only."""
    known = {vi.name: vi for vi in model.graph.inputs}
    ins = tuple(known.get(v) or _value_info(v, specs) for v in seg.inputs)
    outs = tuple(ValueInfo(v, ()) for v in seg.outputs)
    names = {v for n in seg.nodes for v in n.input_names() if v in model.tensors}
    return model.replace(graph=Graph(seg.nodes, ins, outs),
                         tensors={k: t for k, t in model.tensors.items() if k in names},
                         extra={})


def _value_info(v: str, specs: Specs) -> ValueInfo:
    shape, dtype = specs[v]
    dims = ("batch",) + tuple(f"d{i}" for i in range(1, len(shape)))
    return ValueInfo(v, dims, dtype if dtype in ("int64", "int32") else "float32")


class SegmentRunner:
    """One segment on its own Runtime: run(env) adds the segment's outputs to env."""

    def __init__(self, model: Model, seg: Segment, specs: Specs, weights: str = "auto"):
        self.seg = seg
        self.runtime = Runtime(segment_model(model, seg, specs), weights=weights)

    def run(self, env: dict[str, Any]) -> dict[str, np.ndarray]:
        return self.runtime.run({v: env[v] for v in self.seg.inputs})


def split_rows(feeds: dict[str, np.ndarray], parts: int) -> list[dict[str, np.ndarray]]:
    """The feeds cut into at most `parts` contiguous slices along the batch axis (axis 0)."""
    n = len(next(iter(feeds.values())))
    bounds = np.linspace(0, n, min(parts, max(n, 1)) + 1).astype(int)
    return [{k: v[a:b] for k, v in feeds.items()} for a, b in zip(bounds, bounds[1:])]


def join_rows(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Per-output concatenation of ordered slices along the batch axis."""
    if len(parts) == 1:
        return parts[0]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

