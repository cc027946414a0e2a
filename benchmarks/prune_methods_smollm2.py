"""SmolLM2-135M-Instruct (Q4_1 GGUF): magnitude vs Wanda vs SparseGPT on its linear layers.

    python scripts/fetch_real_models.py --only smollm2          # real_models/smollm2/
    python benchmarks/prune_methods_smollm2.py                  # table on stdout
    python benchmarks/prune_methods_smollm2.py --blocks 4 --json

Each method prunes every linear layer of the first `--blocks` decoder blocks (default all 30:
q, k, v, o, gate, up, down = 210 layers; `layers.N.*` node names; the tied embedding / lm_head
stays dense) to 50 % unstructured (per layer; Wanda and SparseGPT per output row) and to 2:4,
through the `prune` step (magnitude 2:4 is method `nm`; seconds include calibration).
Calibration: 16 windows of 128 tokens from /usr/share/common-licenses/Apache-2.0 (tokenized
with the tokenizer kept in the GGUF, no BOS). Evaluation: perplexity on the first 256 tokens of
/usr/share/common-licenses/GPL-3 (one window of 256, stride 256) - a different text.
Statistics come from the dense model in one pass (not layer by layer on the already pruned
model, as the papers' reference code does).

Note: the weights already sit on a 4-bit grid (Q4_1 blocks of 32 with an f16 scale and
minimum; embedding Q8_0). "dense" means those grid values in float32, and SparseGPT's
reconstruction moves the kept weights off that grid. Measured here (one run, 2 cores, all
30 blocks; dense perplexity 21.67):

    method     pattern  perplexity  seconds
    magnitude  50%          288.43      3.2
    wanda      50%           46.78      7.8
    sparsegpt  50%           34.37    192.8
    magnitude  2:4         1346.70      3.3
    wanda      2:4          127.71     10.4
    sparsegpt  2:4          105.82    127.1
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from smollm2_task import (  # noqa: E402
    CALIB_LEN,
    CALIB_TEXT,
    CALIB_WINDOWS,
    EVAL_TEXT,
    EVAL_TOKENS,
    GGUF,
    block_layers,
    load_task,
)

from optcli.steps import STEPS  # noqa: E402

PATTERNS = {"50%": {"sparsity": 0.5}, "2:4": {"n": 2, "m": 4}}
METHODS = ("magnitude", "wanda", "sparsegpt")
NOTE = "weights already on a 4-bit grid (Q4_1; embedding Q8_0): 'dense' = those grid values"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--blocks", type=int, default=30,
                    help="prune only the first N decoder blocks (default 30 = all)")
    ap.add_argument("--methods", default=",".join(METHODS), help="comma-separated subset")
    ap.add_argument("--json", action="store_true", help="print one JSON object at the end")
    ap.add_argument("--sequential", action="store_true",
                    help="wanda/sparsegpt calibrated on the model pruned so far")
    ap.add_argument("--patterns", default=",".join(PATTERNS), help="comma-separated subset")
    args = ap.parse_args()
    prune = STEPS["prune"]

    model, context, eval_ids, ppl = load_task()
    layers = block_layers(args.blocks)

    t0 = time.perf_counter()
    dense = ppl(model)
    print(f"dense perplexity {dense:.4f} ({time.perf_counter() - t0:.1f} s); "
          f"{len(eval_ids) - 1} tokens of {EVAL_TEXT.name} scored; {NOTE}", flush=True)
    print(f"calibration {CALIB_WINDOWS} x {CALIB_LEN} tokens of {CALIB_TEXT.name}; "
          f"pruned blocks 0-{args.blocks - 1} of 30", flush=True)
    print(f"{'method':10} {'pattern':8} {'layers':>6} {'sparsity':>8} {'perplexity':>11} "
          f"{'seconds':>8}", flush=True)
    rows = []
    for pattern in args.patterns.split(","):
        params = PATTERNS[pattern]
        for method in args.methods.split(","):
            name = "nm" if method == "magnitude" and "m" in params else method   # 2:4 by |w|
            seq = args.sequential and name in ("wanda", "sparsegpt")
            config = prune.Config(method=name, layers=layers, sequential=seq, **params)
            t0 = time.perf_counter()
            pruned, record = prune.apply(model, config, context)
            seconds = time.perf_counter() - t0
            sizes = [model.tensors[r["tensor"]].size for r in record.layers]
            sparsity = sum(r["sparsity_after"] * s
                           for r, s in zip(record.layers, sizes)) / sum(sizes)
            p = ppl(pruned)
            rows.append({"method": method, "pattern": pattern, "layers": len(record.layers),
                         "sparsity": sparsity, "perplexity": p, "seconds": seconds})
            print(f"{method:10} {pattern:8} {len(record.layers):6d} {sparsity:8.3f} {p:11.4f} "
                  f"{seconds:8.1f}", flush=True)
    if args.json:
        print(json.dumps({"model": GGUF.name, "note": NOTE, "blocks": args.blocks,
                          "calibration": f"{CALIB_WINDOWS}x{CALIB_LEN} tokens of {CALIB_TEXT}",
                          "evaluation": f"first {EVAL_TOKENS} tokens of {EVAL_TEXT}, window "
                                        f"{EVAL_TOKENS}, stride {EVAL_TOKENS}",
                          "dense_perplexity": dense, "results": rows}, indent=1))


if __name__ == "__main__":
    main()
