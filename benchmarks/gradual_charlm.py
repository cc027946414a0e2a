"""One-shot against gradual pruning (no fine-tuning) on the sample character LM.

    python benchmarks/gradual_charlm.py
    python benchmarks/gradual_charlm.py --sparsities 0.6,0.7 --rounds 2,4,8

Prunes the transformer blocks of `sample_models/charlm.npz` with SparseGPT and with magnitude,
in one shot and in a `gradual:` block of R rounds (cubic schedule, Zhu & Gupta 2017), and
prints held-out perplexity on `sample_models/charlm_eval.npz`. Calibration: 32 windows of
`charlm_calib.npz`. A calibrated method gains from rounds even without recovery training,
because each round's Hessian is taken on the inputs of the already-pruned model (a step's
statistics are computed on its input); magnitude rounds equal the one-shot result.
"""

from __future__ import annotations

import argparse
import sys
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


def pipeline(method: str, sparsity: float, rounds: int):
    prune = f'{{prune: {{method: {method}, sparsity: {sparsity}, layers: ["blocks.*"]}}}}'
    steps = prune if rounds == 1 else f"{{gradual: {{rounds: {rounds}, steps: [{prune}]}}}}"
    calib = "calibration: {data: sample_models/charlm_calib.npz, samples: 32}"
    return parse_pipeline(f"steps: [{steps}]\n{calib}\n", "<benchmark>", ROOT)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sparsities", default="0.5,0.6,0.7")
    ap.add_argument("--rounds", default="1,2,4,8", help="1 = one shot")
    ap.add_argument("--methods", default="magnitude,sparsegpt")
    args = ap.parse_args()
    model = load_model(SAMPLES / "charlm.npz")
    data = load_dataset(SAMPLES / "charlm_eval.npz", model)
    calib = load_dataset(SAMPLES / "charlm_calib.npz", model, samples=32)
    context = StepContext(calibration=lambda: calib.inputs)
    rounds = [int(r) for r in args.rounds.split(",")]
    print(f"dense perplexity {evaluate(model, data, 'perplexity').value:.4f}")
    print(f"{'method':<10} {'sparsity':>8} " + " ".join(
        f"{'one-shot' if r == 1 else f'{r} rounds':>9}" for r in rounds))
    for method in args.methods.split(","):
        for s in map(float, args.sparsities.split(",")):
            ppl = [evaluate(run_steps(model, pipeline(method, s, r), context)[0], data,
                            "perplexity").value for r in rounds]
            print(f"{method:<10} {s:>8.0%} " + " ".join(f"{p:>9.4f}" for p in ppl), flush=True)


if __name__ == "__main__":
    main()
