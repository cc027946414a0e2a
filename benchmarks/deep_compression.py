"""Deep Compression without fine-tuning: prune -> share -> encode on the sample LeNets.

    python benchmarks/deep_compression.py
    python benchmarks/deep_compression.py --models lenet300 --sparsities 0.6,0.7 --bits 4

For each sample model (`sample_models/lenet300.npz`, `lenet5.npz`) the pipeline
prune (method, sparsity) -> share (k-means, bits) -> encode (Huffman) is run through the same
parser and step loop as `optcli compress`, the result saved to a temporary .npz, and the file
size compared with the dense file; top-1 on the 10,000 Fashion-MNIST test images
(`sample_models/fashion_eval.npz`). Methods: magnitude (global ranking) and SparseGPT
(calibrated on `fashion_calib.npz`, 512 images; linear layers only, so LeNet-5's convs keep
magnitude pruning at the same sparsity). The last line gives the highest ratio within one
point of the dense top-1. Han, Mao & Dally (2016) reach 40x on MNIST with retraining; this is
one-shot, so the drop is the price of the choices alone.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from optcli.config import parse_pipeline  # noqa: E402
from optcli.data import load_dataset  # noqa: E402
from optcli.evaluate import evaluate  # noqa: E402
from optcli.io import load_model, save_model  # noqa: E402
from optcli.pipeline import run_steps  # noqa: E402
from optcli.steps.base import StepContext  # noqa: E402

SAMPLES = ROOT / "sample_models"
CALIB = "calibration: {data: sample_models/fashion_calib.npz, samples: 512}"


def prune_steps(model: str, method: str, sparsity: float) -> str:
    if method == "magnitude":
        return f"- prune: {{method: magnitude, sparsity: {sparsity}, scope: global}}"
    convs = '["conv*"]' if model == "lenet5" else None
    sgpt = f"- prune: {{method: sparsegpt, sparsity: {sparsity}" + (
        f", exclude: {convs}}}" if convs else "}")
    return sgpt + (f"\n  - prune: {{sparsity: {sparsity}, layers: {convs}}}" if convs else "")


def pipeline(model: str, method: str, sparsity: float, bits: int | None):
    steps = [prune_steps(model, method, sparsity)] if sparsity else []
    if bits:
        steps.append(f"- share: {{bits: {bits}}}")
    steps.append("- encode: {}")
    text = "steps:\n" + "".join(f"  {s}\n" for s in steps) + CALIB + "\n"
    return parse_pipeline(text, "<benchmark>", ROOT)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="lenet300,lenet5")
    ap.add_argument("--methods", default="magnitude,sparsegpt")
    ap.add_argument("--sparsities", default="0,0.5,0.6,0.7,0.8,0.9")
    ap.add_argument("--bits", default="5,4,3")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        for name in args.models.split(","):
            table(name, args, Path(d))


def table(name: str, args, tmp: Path) -> None:
    dense = load_model(SAMPLES / f"{name}.npz")
    data = load_dataset(SAMPLES / "fashion_eval.npz", dense)
    calib = load_dataset(SAMPLES / "fashion_calib.npz", dense, samples=512)
    context = StepContext(calibration=lambda: calib.inputs)
    dense_bytes = save_model(dense, tmp / "dense.npz", force=True)
    top1 = evaluate(dense, data, "top1").value
    print(f"\n{name}: dense {dense_bytes:,} B, top-1 {top1:.4f}")
    print(f"{'method':<10} {'sparsity':>8} {'bits':>4} {'bytes':>9} {'ratio':>7} {'top-1':>7} "
          f"{'drop':>7}")
    best = None
    for method in args.methods.split(","):
        for s in map(float, args.sparsities.split(",")):
            if method != "magnitude" and not s:
                continue
            for bits in map(int, args.bits.split(",")):
                model, _ = run_steps(dense, pipeline(name, method, s, bits), context)
                size = save_model(model, tmp / "out.npz", force=True)
                acc = evaluate(model, data, "top1").value
                row = (dense_bytes / size, method, s, bits, acc)
                if top1 - acc <= 0.01 and (best is None or row > best):
                    best = row
                print(f"{method:<10} {s:>8.0%} {bits:>4} {size:>9,} {row[0]:>6.2f}x "
                      f"{acc:>7.4f} {100 * (top1 - acc):>6.2f}p", flush=True)
    if best:
        print(f"best within 1 point: {best[0]:.2f}x ({best[1]} {best[2]:.0%}, {best[3]} bits, "
              f"top-1 {best[4]:.4f})")


if __name__ == "__main__":
    main()
