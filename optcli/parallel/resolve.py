"""From the model's stored plan and the command line's overrides to a running executor.

`--workers/--threads/--strategy/--worker-kind` override the plan the `parallelize` step
stored; stage boundaries or shards missing for the resulting worker count are computed by
the planner's partition (estimated costs). `--executor dask://HOST:PORT` (or a scheduler
file) runs data-parallel on a Dask cluster. Nothing given and no stored plan: the plain
serial Runtime, exactly as before.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from optcli.errors import InputError
from optcli.graph import Model
from optcli.parallel.base import Executor, SerialExecutor
from optcli.parallel.blas import available_cores
from optcli.parallel.plan import ExecutionPlan, check_plan, stored_plan


@dataclass(frozen=True)
class ParallelOptions:
    workers: int | None = None
    threads: int | None = None
    strategy: str | None = None
    kind: str | None = None
    executor: str | None = None       # dask://HOST:PORT or a scheduler file

    def given(self) -> bool:
        return any(v is not None for v in dataclasses.astuple(self))


def resolve_plan(model: Model, opts: ParallelOptions, seq: int = 16) -> ExecutionPlan | None:
    """The plan to run: stored, overridden, completed and checked; None = plain serial."""
    stored = stored_plan(model)
    if stored is None and not opts.given():
        return None
    base = stored or ExecutionPlan()
    workers = opts.workers or base.workers
    strategy = opts.strategy or (base.strategy if base.strategy != "serial" or workers == 1
                                 else "data")
    kind = opts.kind or ("thread" if strategy in ("pipeline", "tensor") else base.kind)
    same = workers == base.workers and strategy == base.strategy
    threads = opts.threads or (base.threads if stored is not None and same
                               else max(1, available_cores() // workers))
    plan = dataclasses.replace(base, strategy=strategy, workers=workers, kind=kind,
                               threads=threads)
    plan = _complete(model, plan, same, seq)
    check_plan(plan, model)
    return plan


def _complete(model: Model, plan: ExecutionPlan, same: bool, seq: int) -> ExecutionPlan:
    from optcli.parallel.planner import default_shards, pipeline_stages
    if plan.strategy == "pipeline" and not (same and plan.stages):
        if plan.workers > len(model.graph.nodes):
            return dataclasses.replace(plan, stages=())        # check_plan says why
        return dataclasses.replace(plan, stages=pipeline_stages(model, plan.workers, seq))
    if plan.strategy == "tensor" and not (same and plan.shards):
        return dataclasses.replace(plan, shards=default_shards(model, plan.workers))
    return plan


def open_executor(model: Model, plan: ExecutionPlan, weights: str = "auto",
                  seq: int = 16) -> Executor:
    if plan.strategy == "data" and plan.kind == "process":
        from optcli.parallel.data import ProcessDataExecutor
        return ProcessDataExecutor(model, plan, weights)
    if plan.strategy == "data":
        from optcli.parallel.data import ThreadDataExecutor
        return ThreadDataExecutor(model, plan, weights)
    if plan.strategy == "pipeline":
        from optcli.parallel.pipeline import PipelineExecutor
        return PipelineExecutor(model, plan, weights, seq)
    if plan.strategy == "tensor":
        from optcli.parallel.tensor import TensorExecutor
        return TensorExecutor(model, plan, weights, seq)
    return SerialExecutor(model, plan, weights)


def executor_for(model: Model, opts: ParallelOptions, weights: str = "auto",
                 seq: int = 16) -> Executor | None:
    """The executor `run`/`eval`/`bench` use, or None for the plain Runtime."""
    if opts.executor is not None:
        if opts.strategy not in (None, "data"):
            raise InputError(f"--executor runs data parallel only, not --strategy "
                             f"{opts.strategy}")
        from optcli.parallel.dask_exec import DaskExecutor
        return DaskExecutor(model, opts.executor, weights=weights)
    plan = resolve_plan(model, opts, seq)
    return None if plan is None else open_executor(model, plan, weights, seq)
