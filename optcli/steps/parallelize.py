"""Write an execution plan into the model: how `run`, `eval` and `bench` spread it over
workers (data, pipeline or tensor parallel; optcli/parallel). Weights are not touched.

    steps:
      - parallelize: {strategy: auto, workers: 2, memory_per_worker: 512MB, batch: 256}

`strategy: auto` asks the planner, with its deterministic cost model (FLOP and byte counts at
fixed rates, planner.py), so the same input gives the same file; `optcli plan MODEL`
measures this machine instead and compares. Pipeline stages are balanced by estimated cost;
tensor parallelism splits the linear layers (matched by `layers`/`exclude`) that have at
least 10 % of the largest one's weights (Megatron-LM pairs: MLP up/down, attention q/k/v/o).
A plan that cannot work is refused here: more stages than nodes, a stage or shard whose
weights exceed `memory_per_worker`. `--workers/--threads/--strategy` on the command line
override the stored plan.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from optcli.errors import GraphError, StepError
from optcli.graph import Model
from optcli.parallel import planner as pl
from optcli.parallel.cost import probe
from optcli.parallel.plan import EXTRA_KEY, ExecutionPlan, check_plan, parse_bytes
from optcli.params import param
from optcli.steps.base import StepContext, StepRecord, select_layers

DESCRIPTION = "Store a parallel execution plan (data, pipeline, tensor) for run/eval/bench."


def _memory_ok(v) -> bool:
    try:
        parse_bytes(v)
        return True
    except Exception:
        return False


@dataclass(frozen=True)
class Config:
    strategy: str = param("auto", "how to spread the model; auto: the planner's choice",
                          choices=("auto", "serial", "data", "pipeline", "tensor"))
    workers: int = param(2, "number of workers", check=lambda v: v >= 1, check_doc=">= 1")
    kind: str = param("auto", "worker kind; auto: processes for data, threads otherwise",
                      choices=("auto", "process", "thread"))
    threads: int = param(1, "BLAS threads per worker", check=lambda v: v >= 1,
                         check_doc=">= 1")
    memory_per_worker: str = param(None, "memory of each worker, e.g. 512MB (checked)",
                                   type=str, check=_memory_ok, check_doc="e.g. 512MB")
    micro_batches: int = param(0, "pipeline micro-batches per batch (0: 2 x stages)",
                               check=lambda v: v >= 0, check_doc=">= 0")
    batch: int = param(256, "batch size the plan is chosen for", check=lambda v: v >= 1,
                       check_doc=">= 1")
    seq: int = param(16, "sequence length the costs are estimated at (token models)",
                     check=lambda v: v >= 1, check_doc=">= 1")
    layers: list = param(["*"], "glob patterns of linear layers tensor parallelism may split")
    exclude: list = param([], "glob patterns of layers never split")


def _plan(model: Model, config: Config, strategy: str) -> ExecutionPlan:
    kind = config.kind if config.kind != "auto" else (
        "process" if strategy in ("data", "serial") else "thread")
    memory = None if config.memory_per_worker is None else parse_bytes(config.memory_per_worker)
    if strategy == "serial":            # one process: every core asked for goes to BLAS
        return ExecutionPlan("serial", 1, kind, config.workers * config.threads,
                             memory_per_worker=memory)
    plan = ExecutionPlan(strategy, config.workers, kind, config.threads,
                         micro_batches=config.micro_batches, memory_per_worker=memory)
    if strategy == "pipeline" and config.workers <= len(model.graph.nodes):
        plan = dataclasses.replace(plan, stages=pl.pipeline_stages(model, config.workers,
                                                                   config.seq))
    if strategy == "tensor":
        allowed = {n.name for n in select_layers(model, config.layers, config.exclude,
                                                 ("linear",))}
        plan = dataclasses.replace(plan, shards=tuple(
            s for s in pl.default_shards(model, config.workers) if s in allowed))
    return plan


def check_model(config: Config, model: Model) -> str | None:
    """What `validate` and `compress` can say before computing: a given strategy's plan must
    fit the model (e.g. no more pipeline stages than nodes, stages within the memory)."""
    if config.strategy == "auto":
        return None
    try:
        check_plan(_plan(model, config, config.strategy), model)
    except GraphError as e:
        return str(e)
    return None


def _auto(model: Model, config: Config, record: StepRecord) -> ExecutionPlan:
    """The candidate with the best predicted speedup (deterministic model) that checks; the
    serial plan (one process, every core to BLAS: speedup 1 by definition) unless one is
    predicted faster."""
    m = pl.default_machine(config.workers)
    specs = probe(model, config.seq)
    mc = pl.estimated_costs(model, specs, m, config.batch)
    from optcli.parallel.advise import predict
    best, best_speedup = _plan(model, config, "serial"), 1.0
    record.details["predicted_speedup"] = {"serial": 1.0}
    for strategy in ("data", "pipeline", "tensor"):
        plan = _plan(model, config, strategy)
        try:
            check_plan(plan, model)
        except GraphError as e:
            record.notes.append(f"{strategy}: {e}")
            continue
        row = predict(model, plan, mc, config.batch, specs, m)
        record.details.setdefault("predicted_speedup", {})[strategy] = row["predicted_speedup"]
        if row["predicted_speedup"] > best_speedup:
            best, best_speedup = plan, row["predicted_speedup"]
    return best


def apply(model: Model, config: Config, context: StepContext) -> tuple[Model, StepRecord]:
    record = StepRecord("parallelize", {})
    if config.strategy == "auto":
        plan = _auto(model, config, record)
    else:
        plan = _plan(model, config, config.strategy)
        try:
            check_plan(plan, model)
        except GraphError as e:
            raise StepError(f"parallelize: {e}") from None
    record.details["plan"] = plan.to_json()
    record.notes.append(f"plan: {plan.strategy} x {plan.workers} {plan.kind} workers; "
                        "weights unchanged")
    return model.replace(extra={**model.extra, EXTRA_KEY: plan.to_json()}), record
