"""Tensor parallelism: the graph rewritten so large linear layers run as k shards
(shard_rewrite.py), each parallel region's shards on k threads at once, every shard with its
own Runtime over its own weight slices; the serial parts and the joins (sum or concat) run
on the calling thread.

    {"strategy": "tensor", "workers": 2, "kind": "thread", "threads": 1,
     "shards": ["fc1", "fc2"]}

Each region costs one hand-off to the threads and back (tens of microseconds) and its join
reads all k partial outputs once: worth it for big layers, not for LeNet-sized ones.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from optcli.parallel.base import Executor, Feeds, no_profile
from optcli.parallel.blas import BlasLimit
from optcli.parallel.cost import probe
from optcli.parallel.plan import ExecutionPlan
from optcli.parallel.shard_rewrite import shard_graph
from optcli.parallel.subgraph import SegmentRunner, segments


class TensorExecutor(Executor):
    def __init__(self, model, plan: ExecutionPlan, weights: str = "auto", seq: int = 16):
        self.plan_ = plan
        self._limit = BlasLimit(plan.threads)
        sharded, regions = shard_graph(model, plan.shards, plan.workers)
        groups, program = [], []
        for kind, nodes in regions:                # program: (kind, segment indices)
            parts = nodes if kind == "parallel" else [nodes]
            program.append((kind, list(range(len(groups), len(groups) + len(parts)))))
            groups.extend(parts)
        self._segs = segments(sharded, groups)
        specs = probe(sharded, seq)
        self._runners = [SegmentRunner(sharded, s, specs, weights) for s in self._segs]
        self._program = program
        self._outputs = [vi.name for vi in model.graph.outputs]
        self._pool = ThreadPoolExecutor(plan.workers, thread_name_prefix="optcli-shard")
        self.notes = (f"{sum(k == 'parallel' for k, _ in program)} parallel regions over "
                      f"{len(plan.shards)} listed layers",)

    def run(self, feeds: Feeds, profile: dict[str, float] | None = None) -> Feeds:
        no_profile(profile, "tensor")
        env: dict[str, Any] = dict(feeds)
        for kind, idx in self._program:
            if kind == "serial":
                outs = [self._runners[idx[0]].run(env)]
            else:
                outs = list(self._pool.map(lambda i: self._runners[i].run(env), idx))
            for o in outs:
                env.update(o)
            for i in idx:
                for v in self._segs[i].drop:
                    env.pop(v, None)
        return {k: env[k] for k in self._outputs}

    def describe(self) -> dict[str, Any]:
        return {**super().describe(),
                "regions": [len(idx) for kind, idx in self._program if kind == "parallel"]}

    def close(self) -> None:
        self._pool.shutdown()
        self._limit.restore()
