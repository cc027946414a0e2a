"""The planner: for a model, a worker count and a memory budget, predict each strategy's
speedup and per-worker memory from a cost model, and choose.

The cost model (a model, stated as such; `benchmarks/parallel_speedup.py` compares it with
measurements). Measured once per model, at 1 BLAS thread: T1(n) = P + n·s (P the per-call
overhead, s seconds per sample, from batch 1 and batch b), and the baseline T_base: one
process with all `cores` BLAS threads at batch b. Estimated per node (cost.py): the share of
time each node takes (FLOPs and bytes at the machine's measured rates). With w workers:
- data, processes:  T = T1(b/w) + ipc + b·(in / bandwidth + out / pipe)   (the batch copied
  once into shared memory, outputs pickled back through pipes)
- data, threads: T = T1(b/w) · w / (1 + (w-1)·(c-1)) (w / c if c < 1), c the measured speedup
  of two Python threads each running the model on b/2 samples over running them one after the
  other (Python between kernels holds the GIL, and concurrent OpenBLAS calls contend: measured
  here, two 1-thread sgemms of 1024x384x1536 at once run 1.08x one after the other, of
  128x4096x4096 2.05x, so c is measured per model, not modelled); without a measurement (the
  parallelize step) T = T1(b/w) · (1 + (w-1)·g), g = P/T1(b/w) + GIL, GIL = 0.15
- pipeline (k = w stages, m = 2k micro-batches): T = (m+k-1)·max_i(c_i·(b/m)·s + P_i)
  + m·k·handoff, c_i the estimated cost share of stage i, P_i its part of P
- tensor (k = w shards): T = P + b·s·(1 - f + f/k) + R·handoff + b·J·(k+1)/bandwidth,
  f the estimated share of the sharded layers, R regions, J their output bytes per sample
Speedup = T_base / T. Memory per worker: data = weights (mapped once, shared) + activations
of b/w samples; pipeline = its stage's weights + activations of b/m; tensor = unsplit
weights + 1/k of the split ones + activations of b. Activations = the largest node's input
and output bytes per sample. The extrapolation to 8, 32 and 64 workers assumes one core per
worker and the baseline T_base(n) = P + b·s·(1 - φ + φ/(1 + e·(n-1))), φ the FLOP share of
the time (BLAS threads speed up only the products), e = BLAS_EFFICIENCY; it is the model,
not a measurement.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from optcli.graph import Model
from optcli.parallel.cost import (
    DEFAULT_BANDWIDTH,
    DEFAULT_FLOPS,
    NodeCost,
    node_costs,
    partition,
    probe,
    shard_weight_bytes,
    stage_weight_bytes,
    tensor_bytes,
)
from optcli.parallel.machine import Machine
from optcli.parallel.plan import ExecutionPlan
from optcli.parallel.shard_rewrite import Rewriter, patterns

GIL = 0.15
BLAS_EFFICIENCY = 0.3         # each extra BLAS thread adds 0.3 core on LeNet/MiniLM-sized
                              # products (the measurements: 2 processes x 1 thread
                              # beat 1 process x 2 threads by 1.5-1.75x)
SHARD_MIN_SHARE = 0.10        # a linear is "large" at >= 10 % of the largest one's weights
EXTRAPOLATE = (8, 32, 64)


@dataclass(frozen=True)
class ModelCosts:
    """What the cost model knows of one model: per-node estimates and the measured times."""
    costs: list[NodeCost]
    io_bytes: tuple[float, float]  # graph input, output bytes per sample
    weight_bytes: int
    act_bytes: float             # largest node's activations per sample
    P: float                     # s: per-call overhead at 1 thread
    s: float                     # s per sample at 1 thread
    t_base: float                # s: baseline batch at all cores
    flop_share: float
    thread_scaling: float | None = None   # measured: 2 threads' speedup over one (1..2)


def estimated_seconds(c: NodeCost, m: Machine | None) -> float:
    return c.seconds(m.flops, m.bandwidth) if m else c.seconds(DEFAULT_FLOPS, DEFAULT_BANDWIDTH)


def default_shards(model: Model, k: int) -> tuple[str, ...]:
    """Linear layers with >= k output columns and >= 10 % of the largest one's weights."""
    sizes = {n.name: model.tensors[n.inputs["weight"]].shape for n in model.graph.nodes
             if n.op == "linear" and n.inputs["weight"] in model.tensors}
    big = max((math.prod(s) for s in sizes.values()), default=0)
    return tuple(n for n, s in sizes.items()
                 if s[0] >= k and math.prod(s) >= SHARD_MIN_SHARE * big)


def pipeline_stages(model: Model, k: int, seq: int = 16,
                    machine: Machine | None = None) -> tuple[str, ...]:
    """First node of each of k stages balanced by estimated cost."""
    costs = node_costs(model, probe(model, seq))
    starts = partition([estimated_seconds(c, machine) for c in costs], k)
    return tuple(model.graph.nodes[i].name for i in starts)


def stage_shares(model: Model, plan: ExecutionPlan, mc: ModelCosts,
                 machine: Machine | None) -> list[float]:
    order = {n.name: i for i, n in enumerate(model.graph.nodes)}
    starts = [order[s] for s in plan.stages] + [len(order)]
    t = [estimated_seconds(c, machine) for c in mc.costs]
    total = sum(t) or 1.0
    return [sum(t[a:b]) / total for a, b in zip(starts, starts[1:])]


def _t1(mc: ModelCosts, n: float) -> float:
    return mc.P + n * mc.s


def predict_data(mc: ModelCosts, b: int, w: int, kind: str, m: Machine) -> float:
    per = _t1(mc, b / w)
    if kind == "process":
        in_b, out_b = mc.io_bytes
        return per + m.ipc + b * (in_b / m.bandwidth + out_b / m.pipe)
    if mc.thread_scaling is not None:           # measured for this model: c = 2 threads'
        c = mc.thread_scaling                   # speedup; each further thread adds c - 1
        gain = 1 + (w - 1) * (c - 1) if c >= 1 else c      # (a slowdown is not compounded)
        return per * w / gain
    return per * (1 + (w - 1) * (mc.P / per + GIL))


def predict_pipeline(mc: ModelCosts, b: int, shares: list[float], m: Machine) -> float:
    k = len(shares)
    mb = 2 * k
    slowest = max(c * (b / mb) * mc.s + mc.P * c for c in shares)
    return (mb + k - 1) * slowest + mb * k * m.handoff


def tensor_terms(model: Model, k: int, specs, mc: ModelCosts,
                 machine: Machine | None) -> tuple[float, int, float]:
    """(f, R, J): sharded cost share, parallel regions, their output bytes per sample."""
    rw = Rewriter(model, default_shards(model, k), k)
    found, claimed = patterns(rw)
    t = {c.name: estimated_seconds(c, machine) for c in mc.costs}
    f = sum(t[n] for n in claimed) / (sum(t.values()) or 1.0)
    J = sum(4 * math.prod(specs[model.graph.node(n).outputs[0]][0]) for n in found)
    return f, len(found), float(J)


def predict_tensor(mc: ModelCosts, b: int, k: int, terms, m: Machine) -> float:
    f, R, J = terms
    return mc.P + b * mc.s * (1 - f + f / k) + R * m.handoff + b * J * (k + 1) / m.bandwidth


def memory(model: Model, mc: ModelCosts, plan: ExecutionPlan, b: int) -> int:
    """Predicted bytes per worker (weights it maps + its activations)."""
    w = plan.workers
    if plan.strategy == "pipeline":
        order = {n.name: i for i, n in enumerate(model.graph.nodes)}
        stage = max(stage_weight_bytes(model, [order[s] for s in plan.stages]))
        return int(stage + mc.act_bytes * b / (2 * w))
    if plan.strategy == "tensor":
        return int(shard_weight_bytes(model, plan.shards, w) + mc.act_bytes * b)
    return int(mc.weight_bytes + mc.act_bytes * math.ceil(b / w))


def extrapolate(model: Model, mc: ModelCosts, b: int, specs, m: Machine,
                counts: tuple[int, ...] = EXTRAPOLATE) -> list[dict[str, Any]]:
    """Predicted speedups at n workers on n cores: the cost model only."""
    rows = []
    n_nodes = len(model.graph.nodes)
    for n in counts:
        base = model_baseline(mc, b, n)
        row: dict[str, Any] = {"workers": n, "basis": "cost model"}
        for kind in ("process", "thread"):
            row[f"data_{kind}"] = base / predict_data(mc, b, n, kind, m)
        if n <= n_nodes:
            costs = [estimated_seconds(c, m) for c in mc.costs]
            starts = partition(costs, n) + [n_nodes]
            shares = [sum(costs[a:c]) / (sum(costs) or 1) for a, c in zip(starts, starts[1:])]
            row["pipeline"] = base / predict_pipeline(mc, b, shares, m)
        else:
            row["pipeline"] = None
        row["tensor"] = base / predict_tensor(mc, b, n, tensor_terms(model, n, specs, mc, m), m)
        rows.append(row)
    return rows


def io_bytes(model: Model, specs) -> tuple[float, float]:
    """(input, output) bytes per sample: inputs are copied into shared memory (at memory
    bandwidth), outputs return pickled through pipes (batch_memory.py)."""
    size = lambda vis: float(sum(4 * math.prod(specs[v.name][0])  # noqa: E731
                                 for v in vis if v.name in specs))
    return size(model.graph.inputs), size(model.graph.outputs)


def weight_total(model: Model) -> int:
    return sum(tensor_bytes(model, t) for t in model.tensors)


PER_NODE_OVERHEAD_S = 5e-6    # Python around one kernel call (the deterministic model)


def default_machine(cores: int) -> Machine:
    """The constants of the deterministic model (no measurement): used by the step."""
    return Machine(cores, DEFAULT_FLOPS, DEFAULT_BANDWIDTH, 1e9, 2e-5, 1e-4)


def estimated_costs(model: Model, specs, m: Machine, batch: int) -> ModelCosts:
    """ModelCosts from estimates only (reproducible): per-sample time from the FLOP and byte
    counts at the machine's rates, P = 5 µs per node, the baseline's BLAS threads speeding
    up the FLOP share only."""
    costs = node_costs(model, specs)
    s = sum(estimated_seconds(c, m) for c in costs)
    flop = sum(c.flops / m.flops for c in costs) / (s or 1.0)
    P = PER_NODE_OVERHEAD_S * len(costs)
    mc = ModelCosts(costs, io_bytes(model, specs), weight_total(model),
                    max((c.bytes for c in costs), default=0.0), P, s, 0.0, flop)
    return dataclasses.replace(mc, t_base=model_baseline(mc, batch, m.cores))


def model_baseline(mc: ModelCosts, b: int, cores: int) -> float:
    """One process, `cores` BLAS threads: only the FLOP share speeds up, by 1 + e(n-1)."""
    phi = mc.flop_share
    return mc.P + b * mc.s * (1 - phi + phi / (1 + BLAS_EFFICIENCY * (cores - 1)))
