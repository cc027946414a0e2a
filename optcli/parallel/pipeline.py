"""Pipeline parallelism: the graph cut into contiguous stages (one per worker thread, each its
own Runtime over its own weights), micro-batches streaming through them.

    {"strategy": "pipeline", "workers": 2, "kind": "thread", "threads": 1,
     "stages": ["preprocess.mul", "fc2"], "micro_batches": 4}

A batch is cut into m micro-batches along the batch axis; stage i takes micro-batch j from
its input queue while stage i+1 works on j-1 (GPipe's schedule, inference only). With k
stages, one batch takes (m + k - 1) steps of the slowest stage, so the best speedup is
k·m / (m + k - 1) of a perfectly balanced cut (cost.partition balances estimated cost).
Values a later stage reads (a residual, the attention mask) ride along in the queue.
"""

from __future__ import annotations

import queue
import threading
from typing import Any

from optcli.parallel.base import Executor, Feeds, no_profile
from optcli.parallel.blas import BlasLimit
from optcli.parallel.cost import probe
from optcli.parallel.plan import ExecutionPlan
from optcli.parallel.subgraph import SegmentRunner, join_rows, segments, split_rows


def stage_groups(model, plan: ExecutionPlan) -> list[list]:
    nodes = list(model.graph.nodes)
    order = {n.name: i for i, n in enumerate(nodes)}
    starts = [order[s] for s in plan.stages] + [len(nodes)]
    return [nodes[a:b] for a, b in zip(starts, starts[1:])]


class PipelineExecutor(Executor):
    def __init__(self, model, plan: ExecutionPlan, weights: str = "auto", seq: int = 16):
        self.plan_ = plan
        self._limit = BlasLimit(plan.threads)
        specs = probe(model, seq)
        segs = segments(model, stage_groups(model, plan))
        self._outputs = [vi.name for vi in model.graph.outputs]
        graph_out = set(self._outputs)
        # values each stage hands on: its outputs plus what it received and later stages read
        self._carry = [set(s.outputs) | {v for t in segs[i + 1:] for v in t.inputs}
                       | graph_out for i, s in enumerate(segs)]
        self._stages = [SegmentRunner(model, s, specs, weights) for s in segs]
        self._queues = [queue.Queue() for _ in range(len(segs) + 1)]
        self._threads = [threading.Thread(target=self._loop, args=(i,), daemon=True,
                                          name=f"optcli-stage-{i}")
                         for i in range(len(segs))]
        for t in self._threads:
            t.start()
        self._lock = threading.Lock()        # one batch in the pipe at a time

    def micro_batches(self) -> int:
        return self.plan_.micro_batches or 2 * len(self._stages)

    def run(self, feeds: Feeds, profile: dict[str, float] | None = None) -> Feeds:
        no_profile(profile, "pipeline")
        with self._lock:
            parts = split_rows(feeds, self.micro_batches())
            for j, part in enumerate(parts):
                self._queues[0].put((j, dict(part)))
            results = [self._queues[-1].get() for _ in parts]
        failed = [r for _, r in results if isinstance(r, BaseException)]
        if failed:
            raise failed[0]
        return join_rows([{k: env[k] for k in self._outputs} for _, env in results])

    def _loop(self, i: int) -> None:
        """Stage i: take (j, env) in order, run, pass (j, env') on; None stops the thread.
        A failure travels down the pipe in place of the values, so run() can raise it."""
        stage, carry = self._stages[i], self._carry[i]
        while True:
            item = self._queues[i].get()
            if item is None:
                self._queues[i + 1].put(None)
                return
            j, env = item
            if not isinstance(env, BaseException):
                try:
                    env.update(stage.run(env))
                    env = {k: v for k, v in env.items() if k in carry}
                except Exception as e:          # noqa: BLE001 - re-raised by run()
                    env = e
            self._queues[i + 1].put((j, env))

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "micro_batches": self.micro_batches()}

    def close(self) -> None:
        self._queues[0].put(None)
        for t in self._threads:
            t.join(timeout=5)
        self._limit.restore()
