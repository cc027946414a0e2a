"""Deep Compression with recovery training: gradual pruning + fine-tuning -> 4-bit sharing ->
centroid fine-tuning -> Huffman coding, on the sample LeNet-300-100.

    python benchmarks/deep_compression_finetune.py
    python benchmarks/deep_compression_finetune.py --train sample_models/fashion_train_small.npz

Training data: the full Fashion-MNIST training set (60,000 images, Debian package
`dataset-fashion-mnist`, IDX files under /usr/share/datasets/fashion-mnist) when it is
installed, else the shipped 6,000-image subset. The pipeline (the same YAML `optcli compress`
reads, parsed and run by the same code):
  gradual (5 rounds, cubic) of [prune magnitude global -> finetune 2 epochs, Adam, cosine,
  distillation from the dense model T = 2, alpha 0.7] to 94 %; share 4 bits; finetune the
  centroids 2 epochs at lr 1e-4 (indices and mask fixed); encode.
Printed: the file size against the dense file saved by the same writer, top-1 on the 10,000
test images, and the paper's per-layer columns. Han, Mao & Dally (2016): 40x on MNIST at no
loss. Measured (full training set, idle machine, 82 s, 2026-11-29): 40.9x, top-1
0.8887 -> 0.8878 (fc1 keeps 5.7 %: 4.3 value bits + 7.2 index bits per kept weight).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from optcli.config import parse_pipeline  # noqa: E402
from optcli.data import load_dataset  # noqa: E402
from optcli.evaluate import evaluate  # noqa: E402
from optcli.io import load_model, save_model  # noqa: E402
from optcli.pipeline import run_steps  # noqa: E402
from optcli.sizes import layer_sizes  # noqa: E402
from optcli.steps.base import StepContext  # noqa: E402

SAMPLES = ROOT / "sample_models"
FULL = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")
PIPELINE = """
steps:
  - gradual:
      rounds: {rounds}
      steps:
        - prune: {{method: magnitude, sparsity: {sparsity}, scope: global}}
        - finetune: {{data: {train}, epochs: {epochs}, lr: 1.0e-3, schedule: cosine,
                     distill: {{temperature: 2.0, alpha: 0.7}}}}
  - share: {{bits: {bits}}}
  - finetune: {{data: {train}, epochs: 2, lr: 1.0e-4, distill: {{temperature: 2.0, alpha: 0.7}}}}
  - encode: {{}}
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", default=str(FULL if FULL.is_file()
                                           else SAMPLES / "fashion_train_small.npz"))
    ap.add_argument("--sparsity", type=float, default=0.94)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=2, help="per round")
    ap.add_argument("--bits", type=int, default=4)
    args = ap.parse_args()
    dense = load_model(SAMPLES / "lenet300.npz")
    data = load_dataset(SAMPLES / "fashion_eval.npz", dense)
    yaml = PIPELINE.format(train=args.train, sparsity=args.sparsity, rounds=args.rounds,
                           epochs=args.epochs, bits=args.bits)
    t0 = time.perf_counter()
    small, _ = run_steps(dense, parse_pipeline(yaml, "<benchmark>", ROOT),
                         StepContext(original=dense))
    secs = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as d:
        before = save_model(dense, Path(d) / "dense.npz")
        after = save_model(small, Path(d) / "small.npz")
    top0, top1 = (evaluate(m, data, "top1").value for m in (dense, small))
    print(f"training data: {args.train}; pipeline ran in {secs:.0f} s")
    print(f"file {before:,} -> {after:,} B: {before / after:.1f}x; "
          f"top-1 {top0:.4f} -> {top1:.4f} ({100 * (top1 - top0):+.2f} points)")
    print("| layer | kept | value bits / kept | index bits / kept | bytes |\n|---|---|---|---|---|")
    for r in layer_sizes(small):
        kept = max(r.nonzeros, 1)
        print(f"| {r.layer} | {r.nonzeros / max(r.params, 1):.1%} | "
              f"{8 * (r.bytes - r.index_bytes) / kept:.2f} | {8 * r.index_bytes / kept:.2f} | "
              f"{r.bytes:,} |")


if __name__ == "__main__":
    main()
