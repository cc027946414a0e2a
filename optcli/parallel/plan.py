"""The execution plan: how `run`, `eval` and `bench` spread a model over workers.

Stored as JSON in `Model.extra["parallel"]` by the `parallelize` step; weights are untouched.

    {"strategy": "pipeline", "workers": 2, "kind": "thread", "threads": 1,
     "stages": ["preprocess.mul", "fc2"], "shards": [], "micro_batches": 4,
     "memory_per_worker": 536870912}

- strategy `serial` (one Runtime), `data` (each batch split across workers), `pipeline`
  (`stages` = the first node of each stage, in graph order, one stage per worker) or `tensor`
  (`shards` = the linear layers split across the workers, Megatron-style);
- kind `process` (data only) or `thread`; `threads` = BLAS threads of each worker;
- `memory_per_worker` (bytes, optional) is checked against each stage or shard at load.

`check_plan` validates it against the model and raises a GraphError naming the problem; the
model loader calls it, so a bad stored plan is refused like any other malformed graph.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any

from optcli.errors import GraphError, InputError
from optcli.graph import Model

STRATEGIES = ("serial", "data", "pipeline", "tensor")
KINDS = ("process", "thread")
EXTRA_KEY = "parallel"
_UNITS = {"": 1, "B": 1, "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30, "TB": 1 << 40}


@dataclass(frozen=True)
class ExecutionPlan:
    strategy: str = "serial"
    workers: int = 1
    kind: str = "process"
    threads: int = 1                       # BLAS threads per worker
    stages: tuple[str, ...] = ()           # pipeline: first node name of each stage
    shards: tuple[str, ...] = ()           # tensor: linear node names split across workers
    micro_batches: int = 0                 # pipeline: micro-batches per batch (0: 2 x stages)
    memory_per_worker: int | None = None   # bytes

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["stages"], d["shards"] = list(self.stages), list(self.shards)
        return d

    @classmethod
    def from_json(cls, raw: Any) -> "ExecutionPlan":
        if not isinstance(raw, dict):
            raise GraphError("parallel plan: must be a JSON object")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(raw) - names)
        if unknown:
            raise GraphError(f"parallel plan: unknown key(s) {unknown}; valid: {sorted(names)}")
        _types(raw)
        d = dict(raw)
        for key in ("stages", "shards"):
            if key in d:
                d[key] = tuple(d[key])
        return cls(**d)


def _types(raw: dict[str, Any]) -> None:
    """JSON types of a stored plan, each error naming its key."""
    ints = ("workers", "threads", "micro_batches")
    for k in ints:
        if k in raw and (not isinstance(raw[k], int) or isinstance(raw[k], bool)):
            raise GraphError(f"parallel plan: '{k}' must be an integer, got {raw[k]!r}")
    for k in ("strategy", "kind"):
        if k in raw and not isinstance(raw[k], str):
            raise GraphError(f"parallel plan: '{k}' must be a string, got {raw[k]!r}")
    for k in ("stages", "shards"):
        if k in raw and not (isinstance(raw[k], list) and all(isinstance(x, str)
                                                               for x in raw[k])):
            raise GraphError(f"parallel plan: '{k}' must be a list of node names")
    mem = raw.get("memory_per_worker")
    if mem is not None and (not isinstance(mem, int) or isinstance(mem, bool) or mem <= 0):
        raise GraphError(f"parallel plan: 'memory_per_worker' must be a positive number of "
                         f"bytes, got {mem!r}")


def stored_plan(model: Model) -> ExecutionPlan | None:
    raw = model.extra.get(EXTRA_KEY)
    return None if raw is None else ExecutionPlan.from_json(raw)


def check_stored_plan(model: Model) -> None:
    """Called by the model loader: a stored plan must be valid for this model."""
    plan = stored_plan(model)
    if plan is not None:
        check_plan(plan, model)


def check_plan(plan: ExecutionPlan, model: Model) -> None:
    """Raise GraphError (exit 2) unless `plan` can run `model`; the message names the cause."""
    if plan.strategy not in STRATEGIES:
        raise GraphError(f"parallel plan: strategy {plan.strategy!r}; valid: "
                         f"{', '.join(STRATEGIES)}")
    if plan.kind not in KINDS:
        raise GraphError(f"parallel plan: worker kind {plan.kind!r}; valid: {', '.join(KINDS)}")
    if plan.workers < 1 or plan.threads < 1 or plan.micro_batches < 0:
        raise GraphError(f"parallel plan: workers ({plan.workers}) and threads "
                         f"({plan.threads}) must be >= 1, micro_batches >= 0")
    if plan.kind == "process" and plan.strategy in ("pipeline", "tensor"):
        raise GraphError(f"parallel plan: {plan.strategy} parallelism runs its workers as "
                         "threads of one process; set kind: thread")
    if plan.strategy == "data":
        _check_batch_first(model)
    if plan.strategy == "pipeline":
        _check_stages(plan, model)
    if plan.strategy == "tensor":
        _check_shards(plan, model)


def _check_batch_first(model: Model) -> None:
    g = model.graph
    for vi in (*g.inputs, *g.outputs):
        if not vi.shape or vi.shape[0] != "batch":
            raise GraphError(f"parallel plan: data parallelism splits the batch, but "
                             f"'{vi.name}' has shape {list(vi.shape)} (batch must be first)")


def _check_stages(plan: ExecutionPlan, model: Model) -> None:
    order = {n.name: i for i, n in enumerate(model.graph.nodes)}
    if plan.workers > len(order):
        raise GraphError(f"parallel plan: {plan.workers} pipeline stages but the graph has "
                         f"only {len(order)} nodes; use at most {len(order)} workers")
    if len(plan.stages) != plan.workers:
        raise GraphError(f"parallel plan: {plan.workers} workers need {plan.workers} stage "
                         f"boundaries, the plan lists {len(plan.stages)}")
    missing = [s for s in plan.stages if s not in order]
    if missing:
        raise GraphError(f"parallel plan: stage boundary '{missing[0]}' is not a node")
    idx = [order[s] for s in plan.stages]
    if idx[0] != 0 or any(b <= a for a, b in zip(idx, idx[1:])):
        raise GraphError("parallel plan: stages must start at the first node and follow the "
                         f"graph order, got {list(plan.stages)}")
    if plan.memory_per_worker is not None:
        from optcli.parallel.cost import stage_weight_bytes
        for i, need in enumerate(stage_weight_bytes(model, idx)):
            if need > plan.memory_per_worker:
                raise GraphError(f"parallel plan: stage {i} (from '{plan.stages[i]}') holds "
                                 f"{fmt_bytes(need)} of weights, more than the "
                                 f"{fmt_bytes(plan.memory_per_worker)} a worker has")


def _check_shards(plan: ExecutionPlan, model: Model) -> None:
    if plan.workers < 2:
        raise GraphError("parallel plan: tensor parallelism needs at least 2 workers")
    if not plan.shards:
        raise GraphError("parallel plan: tensor parallelism lists no layer to split (shards)")
    nodes = {n.name: n for n in model.graph.nodes}
    for name in plan.shards:
        n = nodes.get(name)
        if n is None or n.op != "linear" or n.inputs["weight"] not in model.tensors:
            raise GraphError(f"parallel plan: shard '{name}' is not a linear layer with a "
                             "stored weight")
        rows = model.tensors[n.inputs["weight"]].shape[0]
        if rows < plan.workers:
            raise GraphError(f"parallel plan: layer '{name}' has {rows} output columns, fewer "
                             f"than the {plan.workers} workers it would be split across")
    if plan.memory_per_worker is not None:
        from optcli.parallel.cost import shard_weight_bytes
        need = shard_weight_bytes(model, plan.shards, plan.workers)
        if need > plan.memory_per_worker:
            raise GraphError(f"parallel plan: each tensor-parallel worker holds "
                             f"{fmt_bytes(need)} of weights, more than the "
                             f"{fmt_bytes(plan.memory_per_worker)} a worker has")


def parse_bytes(text: str | int) -> int:
    """'512MB' -> 536870912 (binary units: KB = 1024 B); a plain integer is bytes."""
    if isinstance(text, int) and not isinstance(text, bool):
        return text
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?B?)\s*", str(text).upper())
    if not m or float(m.group(1)) <= 0:
        raise InputError(f"memory size {text!r}: expected e.g. 512MB, 2GB or a byte count")
    unit = m.group(2) if m.group(2).endswith("B") or not m.group(2) else m.group(2) + "B"
    return int(float(m.group(1)) * _UNITS[unit])


def fmt_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)
