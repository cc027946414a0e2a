"""LeNet-300-100 at 90 % global sparsity: file size and top-1, magnitude against random.

    python benchmarks/prune_lenet300.py
    python benchmarks/prune_lenet300.py --sparsity 0.95 --seeds 0,1,2

Prunes `sample_models/lenet300.npz` (784-300-100-10 MLP) with the `prune` step at the given
sparsity (scope global for magnitude; random keeps the same fraction of each layer, one run
per seed), saves each model to a temporary .npz, and prints the file size against the dense
file and top-1 on `sample_models/fashion_eval.npz` (10,000 images). Han et al. 2015 report
~12x fewer LeNet-300-100 weights at no accuracy loss after retraining; this is one-shot, with
no fine-tuning, so the magnitude drop is the cost of the criterion alone.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from optcli.data import load_dataset  # noqa: E402
from optcli.evaluate import evaluate  # noqa: E402
from optcli.io import load_model, save_model  # noqa: E402
from optcli.steps import STEPS  # noqa: E402
from optcli.steps.base import StepContext  # noqa: E402

SAMPLES = ROOT / "sample_models"


def row(label: str, model, dense_bytes: int, data, tmp: Path) -> str:
    size = save_model(model, tmp / f"{label}.npz", force=True)
    top1 = evaluate(model, data, "top1").value
    return f"{label:<22} {size:>9,} {dense_bytes / size:>7.2f}x {top1:>7.4f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sparsity", type=float, default=0.9)
    ap.add_argument("--seeds", default="0,1,2", help="seeds of the random baseline")
    args = ap.parse_args()
    dense = load_model(SAMPLES / "lenet300.npz")
    data = load_dataset(SAMPLES / "fashion_eval.npz", dense)
    prune = STEPS["prune"]
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        dense_bytes = save_model(dense, tmp / "dense.npz")
        print(f"{'model':<22} {'bytes':>9} {'vs dense':>8} {'top-1':>7}")
        print(row("dense", dense, dense_bytes, data, tmp))
        mag, _ = prune.apply(dense, prune.Config(sparsity=args.sparsity, scope="global"),
                             StepContext())
        print(row(f"magnitude {args.sparsity:.0%} global", mag, dense_bytes, data, tmp))
        for seed in map(int, args.seeds.split(",")):
            rnd, _ = prune.apply(dense, prune.Config(method="random", sparsity=args.sparsity),
                                 StepContext(seed=seed))
            print(row(f"random {args.sparsity:.0%} seed {seed}", rnd, dense_bytes, data, tmp))


if __name__ == "__main__":
    main()
