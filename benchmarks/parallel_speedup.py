"""Parallel execution on this machine: measured throughput of each strategy against one
process, beside the planner's prediction, and Dask evaluation with a worker killed mid-run.

    pip install -e '.[dask]'
    python benchmarks/parallel_speedup.py                     # all models, table on stdout
    python benchmarks/parallel_speedup.py --models lenet300 --repeats 20 --rounds 3
    python benchmarks/parallel_speedup.py --no-dask --json > out.json

Models at batch 256: sample_models/lenet300.npz (MLP), lenet5.npz (CNN) and MiniLM
(real_models/minilm through optcli.interop; a random-weight 6-layer BERT-sized encoder when it
is absent; token ids at --seq, default 16). Sides, timed in one process in alternating blocks
with a pause before each (optcli/parallel/timing.py `blocked`: call-by-call interleaving let
the baseline's spinning OpenBLAS threads slow the next side; ratio of medians): the baseline,
one process with 2 BLAS threads (and, for reading the figures under load, the same at 1 BLAS
thread); data parallel with 2 processes × 1 BLAS thread (weights shared by memory map); 2
Python threads × 1 BLAS thread; a 2-stage pipeline (4 micro-batches); 2 tensor-parallel shards.
Every side's outputs are first compared with the serial run (max abs diff). The planner's
prediction for each comes from its cost model (optcli/parallel/planner.py), fed with T1, the
baseline and the two-thread scaling measured just before. The whole comparison is repeated
--rounds times, and the load average is printed before and after each: on a shared machine the
ratios are noisy, so compare rounds and re-run when the machine is quiet.

Dask: a LocalCluster of 2 worker processes on loopback evaluates lenet5 on the whole
fashion_eval.npz (10,000 images) in chunks of 256, and again with one worker SIGKILLed after
the second chunk; both accuracies must equal the local run's.

Figures are recorded in benchmarks/README.md (parallel section) with the load at the time.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from optcli.feeds import batch_feeds  # noqa: E402
from optcli.io import load_model  # noqa: E402
from optcli.parallel.advise import measure_costs, predict  # noqa: E402
from optcli.parallel.cost import probe  # noqa: E402
from optcli.parallel.machine import measure_machine  # noqa: E402
from optcli.parallel.plan import ExecutionPlan  # noqa: E402
from optcli.parallel.planner import default_shards, pipeline_stages  # noqa: E402
from optcli.parallel.resolve import open_executor  # noqa: E402
from optcli.parallel.timing import blocked, median  # noqa: E402
from optcli.runtime import Runtime  # noqa: E402

SAMPLES = ROOT / "sample_models"
BATCH = 256


def load(name: str, seq: int):
    if name in ("lenet300", "lenet5"):
        return load_model(SAMPLES / f"{name}.npz")
    if (ROOT / "real_models" / "minilm").is_dir():
        from optcli.interop.hf import import_hf
        return import_hf(str(ROOT / "real_models" / "minilm"))
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from runtime_vs_onnxruntime import bert  # random-weight stand-in
    return bert(np.random.default_rng(0), 6)


def plans(model, seq: int) -> dict[str, ExecutionPlan]:
    return {"data 2 proc x 1": ExecutionPlan("data", 2, "process", 1),
            "data 2 thr x 1": ExecutionPlan("data", 2, "thread", 1),
            "pipeline 2": ExecutionPlan("pipeline", 2, "thread", 1,
                                        stages=pipeline_stages(model, 2, seq)),
            "tensor 2": ExecutionPlan("tensor", 2, "thread", 1,
                                      shards=default_shards(model, 2))}


def max_diff(a: dict, b: dict) -> float:
    return max(float(np.abs(a[k] - b[k]).max()) for k in a)


def compare(name: str, model, seq: int, repeats: int) -> list[dict]:
    """One round: every strategy against the baseline, in alternating blocks (timing.blocked);
    predictions beside."""
    feeds = batch_feeds(model, BATCH, seq=seq)
    rt, m = Runtime(model), measure_machine()
    specs = probe(model, seq)
    mc = measure_costs(model, BATCH, seq, m, specs)
    want = rt.run(feeds)
    execs = {k: open_executor(model, p, seq=seq) for k, p in plans(model, seq).items()}
    try:
        diffs = {k: max_diff(ex.run(feeds), want) for k, ex in execs.items()}
        sides = [(lambda: rt.run(feeds), 2), (lambda: rt.run(feeds), 1)] + [
            (lambda ex=ex: ex.run(feeds), None if ex.plan_.kind == "process" else 1)
            for ex in execs.values()]
        times = blocked(sides, repeats=repeats)
    finally:
        for ex in execs.values():
            ex.close()
    base = median(times[0])
    rows = [{"model": name, "side": "1 proc x 2 BLAS", "ms": 1000 * base, "speedup": 1.0},
            {"model": name, "side": "1 proc x 1 BLAS", "ms": 1000 * median(times[1]),
             "speedup": base / median(times[1])}]
    for (k, ex), t in zip(execs.items(), times[2:]):
        pred = predict(model, ex.plan_, mc, BATCH, specs, m)
        rows.append({"model": name, "side": k, "ms": 1000 * median(t),
                     "speedup": base / median(t), "predicted": pred["predicted_speedup"],
                     "max_abs_diff": diffs[k], "stage_shares": pred.get("stage_shares")})
    return rows


def dask_eval(kill: bool) -> float:
    """Top-1 of lenet5 on the whole eval set through a 2-worker LocalCluster."""
    import distributed

    from optcli.data import load_dataset
    from optcli.evaluate import evaluate
    from optcli.parallel.dask_exec import DaskExecutor
    from optcli.parallel.ordered import OrderedOutputs
    model = load_model(SAMPLES / "lenet5.npz")
    data = load_dataset(SAMPLES / "fashion_eval.npz", model)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1",
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client, DaskExecutor(model, client=client) as ex:
        victim = sorted(client.run(os.getpid).values())[0]

        def outputs():
            for i, out in enumerate(ex.map(f for f, _ in data.batches(BATCH))):
                if kill and i == 1:
                    os.kill(victim, signal.SIGKILL)
                yield out
        return evaluate(model, data, batch_size=BATCH, runtime=OrderedOutputs(outputs())).value


def load_line() -> str:
    return "load average: " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def show(rows: list[dict]) -> None:
    print(f"{'model':9} {'side':16} {'ms/batch':>9} {'speedup':>8} {'predicted':>9} "
          f"{'max|diff|':>10}  stage shares")
    for r in rows:
        pred = f"{r['predicted']:.2f}" if "predicted" in r else "-"
        diff = f"{r['max_abs_diff']:.1e}" if "max_abs_diff" in r else "-"
        shares = " / ".join(f"{100 * s:.0f}%" for s in r.get("stage_shares") or [])
        print(f"{r['model']:9} {r['side']:16} {r['ms']:9.2f} {r['speedup']:8.2f} "
              f"{pred:>9} {diff:>10}  {shares}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="lenet300,lenet5,minilm")
    ap.add_argument("--seq", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--no-dask", action="store_true")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    out: dict = {"cores": os.cpu_count(), "batch": BATCH, "rounds": []}
    for r in range(args.rounds):
        rnd = {"load_before": os.getloadavg(), "rows": []}
        for name in args.models.split(","):
            model = load(name, args.seq)
            reps = args.repeats if name != "minilm" else max(2, args.repeats // 4)
            rnd["rows"] += compare(name, model, args.seq, reps)
        rnd["load_after"] = os.getloadavg()
        out["rounds"].append(rnd)
        if not args.json:
            print(f"round {r + 1}: {load_line()} (before: "
                  f"{' '.join(f'{x:.2f}' for x in rnd['load_before'])})")
            show(rnd["rows"])
    if not args.no_dask:
        t0 = time.perf_counter()
        local = _local_top1()
        out["dask"] = {"local": local, "dask": dask_eval(False),
                       "dask_worker_killed": dask_eval(True),
                       "seconds": time.perf_counter() - t0, "load": os.getloadavg()}
        if not args.json:
            d = out["dask"]
            print(f"dask lenet5 top-1 on 10,000: local {d['local']:.4f}, 2-worker cluster "
                  f"{d['dask']:.4f}, one worker killed mid-run {d['dask_worker_killed']:.4f}")
    if args.json:
        print(json.dumps(out, indent=1))


def _local_top1() -> float:
    from optcli.data import load_dataset
    from optcli.evaluate import evaluate
    model = load_model(SAMPLES / "lenet5.npz")
    return evaluate(model, load_dataset(SAMPLES / "fashion_eval.npz", model)).value


if __name__ == "__main__":
    main()
