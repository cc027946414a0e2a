"""Recovery fine-tuning of a 90 %-pruned LeNet-300-100 (Fashion-MNIST), in NumPy.

    python benchmarks/finetune_recovery.py
    python benchmarks/finetune_recovery.py --epochs 3 --sparsities 0.9,0.95,0.97

1. Schedules: `sample_models/lenet300.npz` pruned one-shot (global magnitude, Han et al. 2015)
   to 90 %, then the finetune step on `fashion_train_small.npz` (6000 images; Adam, lr 1e-3,
   50 warm-up steps, distillation from the unpruned model at T = 2) with a constant, cosine
   and step learning rate; top-1 on `fashion_eval.npz` (10000 images) before and after.
2. Gradual vs one-shot: for each final sparsity, one-shot prune + finetune (E epochs) against a
   `gradual:` block of R rounds (cubic, Zhu & Gupta 2017) with prune + finetune (E / R epochs,
   so the same training budget) in every round; the sparsity reached within 1 point of the
   dense top-1 is printed for each.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from optcli.config import parse_pipeline  # noqa: E402
from optcli.data import load_dataset  # noqa: E402
from optcli.evaluate import evaluate  # noqa: E402
from optcli.io import load_model  # noqa: E402
from optcli.pipeline import run_steps  # noqa: E402
from optcli.steps.base import StepContext  # noqa: E402

SAMPLES = ROOT / "sample_models"
FINETUNE = ("finetune: {{data: {train}, epochs: {epochs}, lr: 1.0e-3, "
            "warmup: 50, schedule: {schedule}, distill: {{temperature: 2.0}}}}")
TRAIN = ["fashion_train_small.npz"]        # --train replaces it (e.g. the 60k IDX file)


def run(model, yaml: str, seed: int = 0):
    pipeline = parse_pipeline(yaml, "<benchmark>", SAMPLES)
    t0 = time.perf_counter()
    new, records = run_steps(model, pipeline, StepContext(seed=seed, original=model))
    return new, time.perf_counter() - t0


def top1(model, data) -> float:
    return evaluate(model, data, "top1").value


def schedules(model, data, sparsity: float, epochs: int) -> None:
    prune = f"  - prune: {{method: magnitude, sparsity: {sparsity}, scope: global}}\n"
    pruned, _ = run(model, "steps:\n" + prune)
    print(f"dense top-1 {top1(model, data):.4f}; one-shot {sparsity:.0%} magnitude, no "
          f"recovery: {top1(pruned, data):.4f}\n")
    print("| schedule | epochs | top-1 after | seconds |\n|---|---|---|---|")
    for schedule in ("constant", "cosine", "step"):
        yaml = "steps:\n" + prune + "  - " + FINETUNE.format(train=TRAIN[0], epochs=epochs,
                                                              schedule=schedule) + "\n"
        new, secs = run(model, yaml)
        print(f"| {schedule} | {epochs} | {top1(new, data):.4f} | {secs:.1f} |")


def gradual(model, data, sparsities: list[float], epochs: int, rounds: int) -> None:
    dense = top1(model, data)
    print(f"\n| sparsity | one-shot + finetune ({epochs} ep) | gradual {rounds} rounds "
          f"(prune + finetune {max(epochs // rounds, 1)} ep each) |\n|---|---|---|")
    best = {"one-shot": 0.0, "gradual": 0.0}
    for s in sparsities:
        prune = f"prune: {{method: magnitude, sparsity: {s}, scope: global}}"
        ft_all = FINETUNE.format(train=TRAIN[0], epochs=epochs, schedule="cosine")
        ft_round = FINETUNE.format(train=TRAIN[0], epochs=max(epochs // rounds, 1),
                                   schedule="cosine")
        one = f"steps:\n  - {prune}\n  - {ft_all}\n"
        grad = (f"steps:\n  - gradual:\n      rounds: {rounds}\n      steps:\n        - {prune}\n"
                f"        - {ft_round}\n")
        a, b = top1(run(model, one)[0], data), top1(run(model, grad)[0], data)
        print(f"| {s:.0%} | {a:.4f} | {b:.4f} |")
        for k, v in (("one-shot", a), ("gradual", b)):
            if dense - v <= 0.01:
                best[k] = max(best[k], s)
    print(f"\nhighest sparsity within 1 point of dense ({dense:.4f}): "
          + ", ".join(f"{k} {v:.0%}" for k, v in best.items()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--sparsities", default="0.8,0.9,0.95,0.97")
    ap.add_argument("--train", default=TRAIN[0], help="training data (.npz or IDX images); "
                    "/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz: all 60k")
    ap.add_argument("--skip-schedules", action="store_true")
    args = ap.parse_args()
    TRAIN[0] = args.train
    model = load_model(SAMPLES / "lenet300.npz")
    data = load_dataset(SAMPLES / "fashion_eval.npz", model)
    if not args.skip_schedules:
        schedules(model, data, 0.9, args.epochs)
    gradual(model, data, [float(s) for s in args.sparsities.split(",")], args.epochs,
            args.rounds)


if __name__ == "__main__":
    main()
