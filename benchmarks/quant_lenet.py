"""The sample MLP (LeNet-300-100) and CNN (LeNet-5) on Fashion-MNIST: top-1 and file ratio at
8, 4, 3 and 2 bits, round to nearest vs GPTQ.

    python benchmarks/quant_lenet.py                 # table on stdout

Every linear and conv layer quantized per output channel (int8) or asymmetric in groups of
32 inputs (4, 3, 2 bits; a conv layer's group runs along C*kh*kw), by the `quantize` step.
GPTQ's Hessians come from the 512 images of sample_models/fashion_calib.npz (conv layers
through im2col); top-1 on sample_models/fashion_eval.npz. The ratio is of the whole file.
"""

from __future__ import annotations

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
G32 = {"granularity": "group", "group_size": 32, "symmetric": False}
GRID = [(8, {"granularity": "channel"})] + [(b, G32) for b in (4, 3, 2)]


def main() -> None:
    quantize = STEPS["quantize"]
    tmp = Path(tempfile.mkdtemp())
    print(f"{'model':9} {'bits':>4} {'method':6} {'top1':>6} {'drop':>7} {'ratio':>6}")
    for name in ("lenet300", "lenet5"):
        model = load_model(SAMPLES / f"{name}.npz")
        calib = load_dataset(SAMPLES / "fashion_calib.npz", model)
        data = load_dataset(SAMPLES / "fashion_eval.npz", model)
        context = StepContext(seed=0, calibration=lambda calib=calib: calib.inputs)
        base = evaluate(model, data).value
        size = (SAMPLES / f"{name}.npz").stat().st_size
        print(f"{name:9} {'f32':>4} {'-':6} {base:6.4f} {0:+7.4f} {1:6.2f}", flush=True)
        for bits, params in GRID:
            for method in ("rtn", "gptq"):
                config = quantize.Config(bits=bits, method=method, **params)
                q, _ = quantize.apply(model, config, context)
                top1 = evaluate(q, data).value
                ratio = size / save_model(q, tmp / "q.npz", force=True)
                print(f"{name:9} {bits:4d} {method:6} {top1:6.4f} {top1 - base:+7.4f} "
                      f"{ratio:6.2f}", flush=True)


if __name__ == "__main__":
    main()
