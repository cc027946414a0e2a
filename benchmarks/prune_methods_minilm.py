"""MiniLM (all-MiniLM-L6-v2): magnitude vs Wanda vs SparseGPT on the encoder's linear layers.

    python scripts/fetch_real_models.py --only minilm          # real_models/minilm
    python benchmarks/prune_methods_minilm.py                  # table on stdout

Each method prunes all 36 linear layers (q, k, v, attention out, FFN up and down of the six
blocks) to 50 % unstructured (per layer; Wanda and SparseGPT per output row) and to 2:4,
through the `prune` step (magnitude 2:4 is method `nm`; seconds include calibration).
Calibration: the 128 Devil's Dictionary entries of sample_models/devil_calibration.jsonl
(headwords and definitions, padding tokens left out of the statistics). Statistics come from
the float model in one pass (not layer by layer on the already pruned model, as the papers'
reference code does). Evaluation: Devil's Dictionary retrieval (sample_models/devil_retrieval.jsonl,
200 pairs disjoint from calibration): mean cosine of each pruned model's embeddings to the
float32 model's, and top-1 (float32: 0.315). Measured here (one run):

    pattern  method      cosine   top1
    50%      magnitude    0.733  0.195
    50%      wanda        0.866  0.265
    50%      sparsegpt    0.922  0.315
    2:4      magnitude    0.657  0.155
    2:4      wanda        0.761  0.235
    2:4      sparsegpt    0.857  0.280
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from minilm_task import load_task  # noqa: E402

from optcli.steps import prune  # noqa: E402
from optcli.text.retrieval import retrieval  # noqa: E402

PATTERNS = {"50%": {"sparsity": 0.5}, "2:4": {"n": 2, "m": 4}}


def main() -> None:
    model, context, pairs = load_task()
    print(f"{'pattern':8} {'method':10} {'cosine':>7} {'top1':>6} {'seconds':>8}")
    for pattern, params in PATTERNS.items():
        for method in ("magnitude", "wanda", "sparsegpt"):
            t0 = time.perf_counter()
            name = "nm" if method == "magnitude" and "m" in params else method   # 2:4 by |w|
            pruned, _ = prune.apply(model, prune.Config(method=name, **params), context)
            seconds = time.perf_counter() - t0
            r = retrieval(pruned, pairs, reference=model)
            print(f"{pattern:8} {method:10} {r['cosine_to_reference']:7.3f} {r['top1']:6.3f} "
                  f"{seconds:8.1f}", flush=True)
    print(f"float32 top1 {r['reference_top1']:.3f} on {r['pairs']} pairs")


if __name__ == "__main__":
    main()
