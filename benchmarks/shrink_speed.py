"""Speed and accuracy of structured pruning (the `shrink` step) on LeNet-300-100.

    python benchmarks/shrink_speed.py                 # 50 % of fc1 and fc2, batch 256
    python benchmarks/shrink_speed.py --sparsity 0.5 --batch 256 --repeats 50 --threads 0

fc1 (300 units) and fc2 (100 units) lose the units with the smallest L1 row norm (Li et al.
2017); fc3's input columns follow. Latency: optcli's fast runtime on the same batch of
`fashion_eval.npz` images, dense and shrunk runs interleaved in one process
(`optcli.bench.measure`), ratio of medians, BLAS limited to --threads
(default 1). Accuracy: top-1 on the 10k Fashion-MNIST test
split before and after, with no fine-tuning (none exists yet). Target (issue 4): >= 1.6x.
"""

from __future__ import annotations

import argparse
import contextlib
import json
from pathlib import Path

from optcli.bench import measure
from optcli.data import load_dataset
from optcli.evaluate import evaluate
from optcli.io import load_model
from optcli.runtime import Runtime
from optcli.steps import shrink
from optcli.steps.base import StepContext

SAMPLES = Path(__file__).resolve().parents[1] / "sample_models"


def _threads(n: int):
    if not n:
        return contextlib.nullcontext()
    import threadpoolctl
    return threadpoolctl.threadpool_limits(n)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sparsity", type=float, default=0.5)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=50)
    ap.add_argument("--threads", type=int, default=1,
                    help="BLAS threads (0: leave as is; 2 on a busy 2-core box is noisy)")
    args = ap.parse_args()
    dense = load_model(SAMPLES / "lenet300.npz")
    small, record = shrink.apply(dense, shrink.Config(sparsity=args.sparsity,
                                                      layers=["fc1", "fc2"]), StepContext())
    data = load_dataset(SAMPLES / "fashion_eval.npz", dense)
    feeds = {k: v[:args.batch] for k, v in data.inputs.items()}
    rt_dense, rt_small = Runtime(dense), Runtime(small)
    with _threads(args.threads):
        t_dense, t_small = measure([lambda: rt_dense.run(feeds), lambda: rt_small.run(feeds)],
                                   batch=args.batch, repeats=args.repeats, warmup=5)
    acc = [evaluate(m, data, metric="top1").value for m in (dense, small)]
    params = [sum(t.size for t in m.tensors.values()) for m in (dense, small)]
    print(json.dumps({
        "model": "lenet300", "shrunk": {r["layer"]: f"{r['units_before']}->{r['units_after']}"
                                        for r in record.layers},
        "params": params, "batch": args.batch, "threads": args.threads,
        "median_ms": [round(t_dense.median_ms, 3), round(t_small.median_ms, 3)],
        "speedup": round(t_dense.median_ms / t_small.median_ms, 2),
        "top1": [round(a, 4) for a in acc], "notes": record.notes}, indent=1))


if __name__ == "__main__":
    main()
