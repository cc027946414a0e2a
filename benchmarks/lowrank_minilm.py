"""MiniLM (all-MiniLM-L6-v2): plain vs whitened (data-aware) SVD of the FFN layers.

    python scripts/fetch_real_models.py --only minilm          # real_models/minilm
    python benchmarks/lowrank_minilm.py                        # table on stdout

The 12 FFN linears (up [1536, 384] and down [384, 1536] of the six blocks) are factorized by
the `lowrank` step so that the two factors of each keep 50 % and 25 % of its weights (rank 153
and 76), with method svd (weight error) and whitened (output error on calibration inputs,
SVD-LLM); both methods get the same rank, so the same parameter count. Calibration: the 128
Devil's Dictionary entries of sample_models/devil_calibration.jsonl (headwords and
definitions, padding left out of X^T X), from the float model in one pass. Evaluation:
Devil's Dictionary retrieval (sample_models/devil_retrieval.jsonl, 200 pairs disjoint from
calibration): mean cosine of each model's embeddings to the float32 model's, and top-1
(float32: 0.315). Measured here (one run):

    kept   method    rank(up)    params  cosine   top1
    50%    svd            153   3525120   0.600  0.175
    50%    whitened       153   3525120   0.862  0.300
    25%    svd             76   1751040   0.457  0.045
    25%    whitened        76   1751040   0.735  0.185

(damping 1e-3 and 1e-4 instead of 0.01 change the 50 % whitened cosine by < 0.001.)
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from minilm_task import load_task  # noqa: E402

from optcli.steps import lowrank  # noqa: E402
from optcli.text.retrieval import retrieval  # noqa: E402

FFN = ["layer.*.ffn.*"]
KEPT = (0.5, 0.25)


def main() -> None:
    model, context, pairs = load_task()
    print(f"{'kept':6} {'method':9} {'rank(up)':>8} {'params':>9} {'cosine':>7} {'top1':>6} "
          f"{'seconds':>8}")
    for kept in KEPT:
        for method in ("svd", "whitened"):
            t0 = time.perf_counter()
            config = lowrank.Config(method=method, params=kept, layers=FFN)
            small, record = lowrank.apply(model, config, context)
            seconds = time.perf_counter() - t0
            params = sum(row["params_after"] for row in record.layers)
            r = retrieval(small, pairs, reference=model)
            print(f"{kept:<6.0%} {method:9} {record.layers[0]['rank']:8d} {params:9d} "
                  f"{r['cosine_to_reference']:7.3f} {r['top1']:6.3f} {seconds:8.1f}", flush=True)
    before = sum(row["params_before"] for row in record.layers)
    print(f"float32 top1 {r['reference_top1']:.3f} on {r['pairs']} pairs; "
          f"FFN weights {before} parameters in {len(record.layers)} layers")


if __name__ == "__main__":
    main()
