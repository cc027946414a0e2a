"""Weight sharing on LeNet-300-100 and LeNet-5: file size against dense and top-1.

    python benchmarks/share_lenet.py
    python benchmarks/share_lenet.py --models lenet5 --bits 5,4

For each sample model (`sample_models/lenet300.npz`, `lenet5.npz`) and Fashion-MNIST
evaluation data (`sample_models/fashion_eval.npz`, 10,000 images): the `share` step alone at
8, 6, 5, 4 and 3 bits (linear init, per layer), and magnitude pruning (global, 60/80/90 %)
alone and followed by `share` at 5 and 4 bits. Each model is saved to a temporary .npz; the
table gives bytes on disk, the ratio to the dense file and top-1. Deep Compression (Han et al.
2016) reports no loss at 5 bits (conv 8) after retraining the centroids; this is one-shot,
without fine-tuning, so the drop is the cost of the clustering alone.
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


def run(model, steps: list[tuple[str, dict]]):
    for name, params in steps:
        model, _ = STEPS[name].apply(model, STEPS[name].Config(**params), StepContext())
    return model


def variants(bits: list[int], sparsities: list[float]) -> list[tuple[str, list]]:
    out = [("dense", [])]
    out += [(f"share {b} bits", [("share", {"bits": b})]) for b in bits]
    for s in sparsities:
        prune = ("prune", {"sparsity": s, "scope": "global"})
        out.append((f"prune {s:.0%}", [prune]))
        out += [(f"prune {s:.0%} + share {b}", [prune, ("share", {"bits": b})])
                for b in (5, 4)]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="lenet300,lenet5")
    ap.add_argument("--bits", default="8,6,5,4,3")
    ap.add_argument("--sparsity", default="0.6,0.8,0.9")
    args = ap.parse_args()
    table = variants([int(b) for b in args.bits.split(",")],
                     [float(s) for s in args.sparsity.split(",")])
    with tempfile.TemporaryDirectory() as d:
        for name in args.models.split(","):
            dense = load_model(SAMPLES / f"{name}.npz")
            data = load_dataset(SAMPLES / "fashion_eval.npz", dense)
            dense_bytes = save_model(dense, Path(d) / "dense.npz", force=True)
            print(f"\n{name}\n{'variant':<24} {'bytes':>9} {'vs dense':>8} {'top-1':>7}")
            for label, steps in table:
                model = run(dense, steps)
                size = save_model(model, Path(d) / "m.npz", force=True)
                top1 = evaluate(model, data, "top1").value
                print(f"{label:<24} {size:>9,} {dense_bytes / size:>7.2f}x {top1:>7.4f}",
                      flush=True)


if __name__ == "__main__":
    main()
