"""`optcli plan`: measure what the cost model needs, predict every strategy, choose, and
(with measure=True) run each candidate in blocks alternating with the baseline to show the
measured speedup beside the prediction. The serial baseline is a candidate too: where no
strategy beats one process with every core given to BLAS, the choice is to stay serial.
The choice follows the measured speedups when there are any, else the predictions. See
planner.py for the model and its assumptions."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from optcli.feeds import batch_feeds
from optcli.graph import Model
from optcli.parallel import planner as pl
from optcli.parallel.cost import node_costs, probe
from optcli.parallel.machine import Machine, measure_machine
from optcli.parallel.plan import ExecutionPlan, check_plan
from optcli.parallel.timing import blocked, median
from optcli.runtime import Runtime


def measure_costs(model: Model, batch: int, seq: int, m: Machine, specs) -> pl.ModelCosts:
    """T1 at batch 1 and b (1 BLAS thread), the baseline at all cores, and how two Python
    threads running the model at once scale (timing.blocked)."""
    rt = Runtime(model)
    f1, fb = batch_feeds(model, 1, seq=seq), batch_feeds(model, batch, seq=seq)
    fh = batch_feeds(model, max(1, batch // 2), seq=seq)
    reps = 4 if batch * seq > 2048 else 20
    with ThreadPoolExecutor(2) as pool:
        two = lambda: list(pool.map(rt.run, [fh, fh]))  # noqa: E731
        t1, tb, base, one_by_one, at_once = (median(x) for x in blocked(
            [(lambda: rt.run(f1), 1), (lambda: rt.run(fb), 1), (lambda: rt.run(fb), m.cores),
             (lambda: (rt.run(fh), rt.run(fh)), 1), (two, 1)], repeats=reps))
    costs = node_costs(model, specs)
    s = max(tb - t1, 1e-9) / max(batch - 1, 1)
    flop = sum(c.flops / m.flops for c in costs)
    total = sum(pl.estimated_seconds(c, m) for c in costs) or 1.0
    return pl.ModelCosts(costs, pl.io_bytes(model, specs), pl.weight_total(model),
                         max((c.bytes for c in costs), default=0.0), max(t1 - s, 0.0), s,
                         base, flop / total, min(2.0, max(0.5, one_by_one / at_once)))


def candidates(model: Model, workers: int, cores: int, seq: int, m: Machine
               ) -> list[ExecutionPlan]:
    """The serial baseline itself (one process, every core to BLAS), then each strategy."""
    threads = max(1, cores // workers)
    out = [ExecutionPlan("serial", 1, "thread", cores),
           ExecutionPlan("data", workers, "process", threads),
           ExecutionPlan("data", workers, "thread", threads)]
    if workers <= len(model.graph.nodes):
        out.append(ExecutionPlan("pipeline", workers, "thread", threads,
                                 stages=pl.pipeline_stages(model, workers, seq, m)))
    shards = pl.default_shards(model, workers)
    if workers >= 2 and shards:
        out.append(ExecutionPlan("tensor", workers, "thread", threads, shards=shards))
    return out


def predict(model: Model, plan: ExecutionPlan, mc: pl.ModelCosts, b: int, specs,
            m: Machine) -> dict[str, Any]:
    if plan.strategy == "serial":
        t, extra = mc.t_base, {}
    elif plan.strategy == "data":
        t = pl.predict_data(mc, b, plan.workers, plan.kind, m)
        extra = {}
    elif plan.strategy == "pipeline":
        shares = pl.stage_shares(model, plan, mc, m)
        t = pl.predict_pipeline(mc, b, shares, m)
        extra = {"stage_shares": shares}
    else:
        terms = pl.tensor_terms(model, plan.workers, specs, mc, m)
        t = pl.predict_tensor(mc, b, plan.workers, terms, m)
        extra = {"sharded_share": terms[0], "regions": terms[1]}
    return {"plan": plan.to_json(), "predicted_ms": 1000 * t,
            "predicted_speedup": mc.t_base / t,
            "memory_per_worker": pl.memory(model, mc, plan, b), **extra}


def plan_report(model: Model, workers: int, *, memory_per_worker: int | None = None,
                batch: int = 256, seq: int = 16, measure: bool = False,
                path: str = "") -> dict[str, Any]:
    m = measure_machine()
    specs = probe(model, seq)
    mc = measure_costs(model, batch, seq, m, specs)
    rows = [predict(model, p, mc, batch, specs, m)
            for p in candidates(model, workers, m.cores, seq, m)]
    for r in rows:
        r["fits"] = memory_per_worker is None or r["memory_per_worker"] <= memory_per_worker
    if measure:
        _measure(model, rows, batch, seq, m.cores)
    key = "measured_speedup" if measure else "predicted_speedup"
    fitting = [r for r in rows if r["fits"]]
    choice = max(fitting, key=lambda r: r[key]) if fitting else None
    return {"kind": "plan", "model": path or model.name, "workers": workers, "batch": batch,
            "seq": seq, "cores": m.cores, "memory_per_worker": memory_per_worker,
            "machine": m.to_dict(),
            "measured": {"baseline_ms": 1000 * mc.t_base, "one_thread_ms": 1000 * (
                mc.P + batch * mc.s), "overhead_ms": 1000 * mc.P,
                "thread_scaling": mc.thread_scaling},
            "chosen_by": key,
            "candidates": rows, "choice": None if choice is None else choice["plan"],
            "extrapolation": pl.extrapolate(model, mc, batch, specs, m),
            "note": "predictions and extrapolation come from the cost model in "
                    "optcli/parallel/planner.py; measured_speedup (with --measure) is "
                    "measured here, interleaved with the baseline"}


def _measure(model: Model, rows: list[dict[str, Any]], batch: int, seq: int,
             cores: int) -> None:
    """Add measured_speedup to each row: its executor against the serial Runtime at all
    cores, in alternating blocks (timing.blocked)."""
    from optcli.parallel.resolve import open_executor
    rt = Runtime(model)
    feeds = batch_feeds(model, batch, seq=seq)
    for r in rows:
        plan = ExecutionPlan.from_json(r["plan"])
        if plan.strategy == "serial":
            r["measured_speedup"] = 1.0             # the baseline itself
            continue
        check_plan(plan, model)
        with open_executor(model, plan, seq=seq) as ex:
            own = None if plan.kind == "process" else plan.threads
            base, par = blocked([(lambda: rt.run(feeds), cores),
                                 (lambda: ex.run(feeds), own)],
                                repeats=4 if batch * seq > 2048 else 20)
        r["measured_speedup"] = median(base) / median(par)

