"""Per-node cost estimates: FLOPs and bytes moved per sample, from one probe run at batch 1.

An estimate, not a measurement: t(node) = flops / FLOPS + bytes / BANDWIDTH per sample, with
the two rates either the defaults below (a deterministic model, what the `parallelize` step
uses so its output is reproducible) or measured on this machine by the planner.
- linear: 2 · rows · in · out (rows = all leading dims of x);
- conv2d: 2 · out.size · (C/groups) · kh · kw;
- attention: 4 · T · S · H·Dh (scores and context);
- every other op: memory-bound, the bytes of its activation inputs and its output.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from optcli.graph import Model, Node, ValueInfo

DEFAULT_FLOPS = 20e9          # float32 FLOP/s of one core in sgemm (laptop-class AVX2)
DEFAULT_BANDWIDTH = 5e9       # bytes/s of elementwise NumPy passes on one core

Specs = dict[str, tuple[tuple[int, ...], str]]     # value -> (shape at batch 1, dtype)


@dataclass(frozen=True)
class NodeCost:
    name: str
    flops: float          # per sample
    bytes: float          # activation bytes read + written, per sample
    weight_bytes: int     # resident float32 bytes of the weights it reads

    def seconds(self, flops_rate: float = DEFAULT_FLOPS,
                bandwidth: float = DEFAULT_BANDWIDTH) -> float:
        return self.flops / flops_rate + self.bytes / bandwidth


def probe(model: Model, seq: int = 16) -> Specs:
    """Shape (batch 1) and dtype of every graph input and node output, from one run."""
    from optcli.feeds import batch_feeds
    from optcli.runtime import Runtime
    outs = tuple(ValueInfo(o, (), "float32") for n in model.graph.nodes for o in n.outputs)
    everything = model.replace(graph=dataclasses.replace(model.graph, outputs=outs))
    feeds = batch_feeds(model, 1, seq=seq)
    values = {**feeds, **Runtime(everything).run(feeds)}
    return {k: (tuple(np.shape(v)), np.asarray(v).dtype.name) for k, v in values.items()}


def tensor_bytes(model: Model, name: str) -> int:
    """Resident bytes of a weight as the runtime decodes it (float32)."""
    return 4 * math.prod(model.tensors[name].shape)


def node_costs(model: Model, specs: Specs) -> list[NodeCost]:
    return [_cost(model, n, specs) for n in model.graph.nodes]


def _cost(model: Model, n: Node, specs: Specs) -> NodeCost:
    shape = lambda v: specs[v][0]  # noqa: E731
    weights = [v for v in n.input_names() if v in model.tensors]
    acts = [v for v in n.input_names() if v not in model.tensors] + [n.outputs[0]]
    moved = sum(4 * math.prod(shape(v)) for v in acts if v in specs)
    flops = 0.0
    if n.op == "linear":
        w = model.tensors[n.inputs["weight"]].shape
        flops = 2.0 * math.prod(shape(n.inputs["x"])[:-1]) * w[0] * w[1]
    elif n.op == "conv2d":
        w = model.tensors[n.inputs["weight"]].shape
        flops = 2.0 * math.prod(shape(n.outputs[0])) * math.prod(w[1:])
    elif n.op == "attention":
        q, k = shape(n.inputs["q"]), shape(n.inputs["k"])
        flops = 4.0 * q[1] * k[1] * q[2]
    return NodeCost(n.name, flops, float(moved), sum(tensor_bytes(model, w) for w in weights))


def stage_weight_bytes(model: Model, starts: list[int]) -> list[int]:
    """Weight bytes each pipeline stage holds; stage i = nodes [starts[i], starts[i+1])."""
    nodes = model.graph.nodes
    ends = list(starts[1:]) + [len(nodes)]
    out = []
    for a, b in zip(starts, ends):
        names = {v for n in nodes[a:b] for v in n.input_names() if v in model.tensors}
        out.append(sum(tensor_bytes(model, v) for v in names))
    return out


def shard_weight_bytes(model: Model, shards: tuple[str, ...], workers: int) -> int:
    """Weights of the busiest tensor-parallel worker: worker 0 also runs everything unsplit."""
    split = {model.graph.node(s).inputs.get(r) for s in shards for r in ("weight", "bias")}
    split.discard(None)
    total = sum(tensor_bytes(model, v) for v in model.tensors)
    shard = sum(tensor_bytes(model, v) for v in split)
    return total - shard + math.ceil(shard / workers)


def partition(costs: list[float], k: int) -> list[int]:
    """Start indices of k contiguous stages with near-equal cost (greedy on prefix sums:
    each boundary goes to the node where the running cost is closest to j/k of the total)."""
    if k > len(costs):
        raise ValueError(f"{k} stages for {len(costs)} nodes")
    prefix = np.cumsum([0.0, *costs])
    starts = [0]
    for j in range(1, k):
        target = prefix[-1] * j / k
        lo, hi = starts[-1] + 1, len(costs) - (k - j)       # leave a node per later stage
        best = min(range(lo, hi + 1), key=lambda i: abs(prefix[i] - target))
        starts.append(best)
    return starts
