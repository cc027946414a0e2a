"""all-MiniLM-L6-v2 end to end: optcli against transformers and onnxruntime-on-export.

    python scripts/fetch_real_models.py --only minilm          # real_models/minilm
    python scripts/make_devil_retrieval.py                     # sample_models/devil_*.jsonl
    python benchmarks/real_models_minilm.py                    # table on stdout
    python benchmarks/real_models_minilm.py --pairs 50 --json

Three implementations embed the same texts from the same token ids (optcli's tokenization
through the `tokenizers` package): optcli's runtime on the imported model, transformers'
`BertModel` + mean pooling + L2 norm (needs torch), and onnxruntime on
`optcli.interop.onnx_export.export_onnx(model)`. For each: Devil's Dictionary retrieval top-1
and MRR (query = headword, documents = definitions; ../shared/REAL_MODELS.md reports MiniLM
fp32 top-1 0.315, MRR 0.402 on the first 200 entries), wall time, and the mean and minimum
cosine of its embeddings to optcli's. Import time is that of `import_hf` (safetensors read,
graph build and validation, sha256 of the weights file).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from optcli.interop.hf import import_hf  # noqa: E402
from optcli.text.retrieval import embed, load_pairs, rank_metrics  # noqa: E402

MINILM = ROOT / "real_models" / "minilm"
PAIRS = ROOT / "sample_models" / "devil_retrieval.jsonl"


class OnnxRunner:
    """onnxruntime on the ONNX export, behind optcli's `run(feeds) -> {name: array}`."""

    def __init__(self, model):
        import onnxruntime as ort

        from optcli.interop.onnx_export import export_onnx
        self.session = ort.InferenceSession(export_onnx(model).SerializeToString(),
                                            providers=["CPUExecutionProvider"])

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {"embedding": self.session.run(["embedding"], feeds)[0]}


class TorchRunner:
    """transformers' BertModel + sentence-transformers mean pooling + L2 norm."""

    def __init__(self, folder: Path):
        import torch
        import transformers
        self.torch = torch
        self.bert = transformers.BertModel.from_pretrained(str(folder)).eval()

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        mask = feeds["attention_mask"]
        with self.torch.no_grad():
            h = self.bert(input_ids=self.torch.tensor(feeds["input_ids"]),
                          attention_mask=self.torch.tensor(mask)).last_hidden_state.numpy()
        pooled = (h * mask[:, :, None]).sum(1) / mask.sum(1, keepdims=True)       # [B, D]
        return {"embedding": pooled / np.linalg.norm(pooled, axis=1, keepdims=True)}


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def measure(name: str, make: Callable[[], Any], model, texts: list[str], n: int,
            base: np.ndarray | None) -> tuple[dict[str, Any], np.ndarray | None]:
    """One implementation's row: retrieval metrics, time, agreement with `base` (optcli)."""
    try:
        runner = make()
    except ImportError as e:
        return {"implementation": name, "skipped": f"not installed ({e.name})"}, None
    t0 = time.perf_counter()
    emb = embed(model, texts, runtime=runner)                     # [2n, D]
    row = {"implementation": name, "seconds": round(time.perf_counter() - t0, 2),
           **{k: round(v, 4) for k, v in rank_metrics(emb[:n], emb[n:]).items()}}
    if base is not None:
        cos = _cosines(emb, base)
        row.update(mean_cosine=float(cos.mean()), min_cosine=float(cos.min()))
    return row, emb


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pairs", type=int, default=200, help="first N evaluation pairs")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if not (MINILM / "model.safetensors").is_file():
        raise SystemExit(f"{MINILM} missing: python scripts/fetch_real_models.py --only minilm")
    t0 = time.perf_counter()
    model = import_hf(MINILM)
    import_seconds = time.perf_counter() - t0
    pairs = load_pairs(PAIRS)[:args.pairs]
    n, texts = len(pairs), [q for q, _ in pairs] + [d for _, d in pairs]
    rows, base = [], None
    for name, make in (("optcli", lambda: None), ("transformers", lambda: TorchRunner(MINILM)),
                       ("onnxruntime (export)", lambda: OnnxRunner(model))):
        row, emb = measure(name, make, model, texts, n, base)
        base = emb if base is None else base
        rows.append(row)
    report = {"model": str(MINILM), "pairs": n, "import_seconds": round(import_seconds, 3),
              "params": int(sum(t.size for t in model.tensors.values())), "rows": rows}
    print(json.dumps(report, indent=2) if args.json else render(report))


def render(report: dict[str, Any]) -> str:
    lines = [f"all-MiniLM-L6-v2: {report['params']:,} params, import_hf "
             f"{report['import_seconds']:.2f} s; Devil's Dictionary, first {report['pairs']} "
             "pairs (headword -> definition)", "",
             f"{'implementation':<22}{'top-1':>7}{'MRR':>8}{'seconds':>9}"
             f"{'mean cos':>13}{'min cos':>13}"]
    for r in report["rows"]:
        if "skipped" in r:
            lines.append(f"{r['implementation']:<22}  skipped: {r['skipped']}")
            continue
        cos = (f"{r['mean_cosine']:>13.9f}{r['min_cosine']:>13.9f}" if "mean_cosine" in r
               else f"{'(base)':>13}{'':>13}")
        lines.append(f"{r['implementation']:<22}{r['top1']:>7.3f}{r['mrr']:>8.3f}"
                     f"{r['seconds']:>9.1f}{cos}")
    lines.append("\ncosines are to optcli's embeddings of the same 2N texts (queries + documents)")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
