"""MiniLM (all-MiniLM-L6-v2): weight quantization of the encoder's 36 linear layers.

    python scripts/fetch_real_models.py --only minilm          # real_models/minilm
    python benchmarks/quant_minilm.py                          # table on stdout

Through the `quantize` step: int8 per-channel RTN; 4-bit group-128 RTN (symmetric and
asymmetric); 4-bit group-128 GPTQ (asymmetric, with and without act_order); 4-bit group-128
AWQ (+RTN, +GPTQ); 3-bit group-128 RTN vs GPTQ. Calibration: the 128 Devil's Dictionary entries
of sample_models/devil_calibration.jsonl (padding left out). Evaluation: Devil's Dictionary
retrieval (sample_models/devil_retrieval.jsonl, 200 pairs disjoint from calibration): mean
cosine of the embeddings to float32, top-1 and MRR (float32: 0.315 / 0.402), and the whole
model file's bytes (embeddings stay float32 except in the "+ tables" rows, which quantize the
embedding tables too by RTN with the step's grid: `embeddings: true`).
    python benchmarks/quant_minilm.py --only tables            # rows whose label contains it
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from minilm_task import load_task  # noqa: E402

from optcli.io import save_model  # noqa: E402
from optcli.steps import quantize  # noqa: E402
from optcli.text.retrieval import retrieval  # noqa: E402

G128 = {"granularity": "group", "group_size": 128}
RUNS = {
    "int8 channel rtn": {"bits": 8},
    "int4 g128 rtn sym": {"bits": 4, **G128},
    "int4 g128 rtn asym": {"bits": 4, "symmetric": False, **G128},
    "int4 g128 rtn asym clip": {"bits": 4, "symmetric": False, "clip": True, **G128},
    "int4 g128 gptq asym": {"method": "gptq", "bits": 4, "symmetric": False, **G128},
    "int4 g128 gptq asym act": {"method": "gptq", "bits": 4, "symmetric": False,
                                "act_order": True, **G128},
    "int4 g128 gptq asym clip": {"method": "gptq", "bits": 4, "symmetric": False,
                                 "clip": True, **G128},
    "int4 g128 gptq asym act clip": {"method": "gptq", "bits": 4, "symmetric": False,
                                     "act_order": True, "clip": True, **G128},
    "int4 g128 gptq asym act seq": {"method": "gptq", "bits": 4, "symmetric": False,
                                    "act_order": True, "sequential": True, **G128},
    "int4 g128 awq asym": {"method": "awq", "bits": 4, "symmetric": False, **G128},
    "int4 g128 awq+gptq asym": {"method": "awq", "awq_solver": "gptq", "bits": 4,
                                "symmetric": False, **G128},
    "int8 rtn + tables": {"bits": 8, "embeddings": True},
    "int4 g128 gptq act + tables": {"method": "gptq", "bits": 4, "symmetric": False,
                                    "act_order": True, "embeddings": True, **G128},
    "int3 g128 rtn asym": {"bits": 3, "symmetric": False, **G128},
    "int3 g128 gptq asym act": {"method": "gptq", "bits": 3, "symmetric": False,
                                "act_order": True, **G128},
    "int3 g128 gptq asym act seq": {"method": "gptq", "bits": 3, "symmetric": False,
                                    "act_order": True, "sequential": True, **G128},
}


def main() -> None:
    only = sys.argv[sys.argv.index("--only") + 1] if "--only" in sys.argv else ""
    model, context, pairs = load_task()
    tmp = Path(tempfile.mkdtemp())
    base = save_model(model, tmp / "f32.npz")
    print(f"{'config':26} {'cosine':>7} {'top1':>6} {'mrr':>6} {'MB':>6} {'ratio':>6} "
          f"{'seconds':>8}")
    for label, params in RUNS.items():
        if only not in label:
            continue
        t0 = time.perf_counter()
        q, _ = quantize.apply(model, quantize.Config(**params), context)
        seconds = time.perf_counter() - t0
        size = save_model(q, tmp / "q.npz", force=True)
        r = retrieval(q, pairs, reference=model)
        print(f"{label:26} {r['cosine_to_reference']:7.4f} {r['top1']:6.3f} {r['mrr']:6.3f} "
              f"{size / 1e6:6.2f} {base / size:6.2f} {seconds:8.1f}", flush=True)
    print(f"float32 top1 {r['reference_top1']:.3f} mrr {r['reference_mrr']:.3f} on "
          f"{r['pairs']} pairs; file {base / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
