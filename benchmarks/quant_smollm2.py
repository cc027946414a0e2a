"""SmolLM2-135M-Instruct (Q4_1 GGUF): perplexity of RTN vs GPTQ vs AWQ at 4 and 3 bits, g128.

    python scripts/fetch_real_models.py --only smollm2          # real_models/smollm2/
    python benchmarks/quant_smollm2.py                          # table on stdout
    python benchmarks/quant_smollm2.py --blocks 4 --bits 4 --methods rtn,gptq

Every linear layer of the first `--blocks` decoder blocks (default all 30: q, k, v, o, gate,
up, down = 210 layers) is quantized asymmetric, group 128, by the `quantize` step; the tied
embedding / lm_head stays as imported. Calibration and evaluation are those of
benchmarks/prune_methods_smollm2.py: 16 windows of 128 tokens of Apache-2.0 for the Hessians,
perplexity on the first 256 tokens of GPL-3 (one window). Statistics come from the
unquantized model in one pass (not block by block on the already quantized model, as the
papers' reference code does).

Note: the weights already sit on a 4-bit grid (Q4_1 blocks of 32 with an f16 scale and
minimum; embedding Q8_0), so 4-bit g128 re-quantizes a 4-bit g32 model: RTN at 4 bits loses
less than it would on a float checkpoint, and the interesting row is 3 bits.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from smollm2_task import block_layers, load_task  # noqa: E402

from optcli.steps import STEPS  # noqa: E402

METHODS = {"rtn": {}, "gptq": {"method": "gptq", "act_order": True}, "awq": {"method": "awq"},
           "rtn+clip": {"clip": True}, "awq+clip": {"method": "awq", "clip": True},
           "gptq+clip": {"method": "gptq", "act_order": True, "clip": True}}
DEFAULT = "rtn,gptq,awq"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--blocks", type=int, default=30, help="quantize the first N blocks")
    ap.add_argument("--bits", default="4,3", help="comma-separated widths")
    ap.add_argument("--methods", default=DEFAULT,
                    help=f"comma-separated subset of {', '.join(METHODS)}")
    ap.add_argument("--eval-tokens", type=int, default=256,
                    help="GPL-3 tokens to evaluate on, in windows of 256")
    args = ap.parse_args()
    quantize = STEPS["quantize"]
    model, context, _, ppl = load_task(args.eval_tokens)
    layers = block_layers(args.blocks)

    print(f"source (Q4_1 grid values in float32) perplexity {ppl(model):.4f}; blocks "
          f"0-{args.blocks - 1}", flush=True)
    print(f"{'bits':>4} {'method':8} {'bits/w':>6} {'perplexity':>11} {'mean rel err':>12} "
          f"{'seconds':>8}", flush=True)
    for bits in (int(b) for b in args.bits.split(",")):
        for method in args.methods.split(","):
            config = quantize.Config(bits=bits, granularity="group", group_size=128,
                                     symmetric=False, layers=layers, **METHODS[method])
            t0 = time.perf_counter()
            q, record = quantize.apply(model, config, context)
            seconds = time.perf_counter() - t0
            n = sum(model.tensors[r["tensor"]].size for r in record.layers)
            bpw = 8 * sum(r["bytes_after"] for r in record.layers) / n
            err = float(np.mean([r["rel_output_error"] for r in record.layers]))
            print(f"{bits:4d} {method:8} {bpw:6.3f} {ppl(q):11.4f} {err:12.5f} {seconds:8.1f}",
                  flush=True)


if __name__ == "__main__":
    main()
