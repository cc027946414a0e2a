"""all-MiniLM-L6-v2, W8A8: optcli's activation quantization against onnxruntime's.

    python scripts/fetch_real_models.py --only minilm          # real_models/minilm
    python benchmarks/w8a8_minilm.py [--pairs 200] [--repeats 10] [--json]

Variants (every linear layer of the encoder, `layer.*`; the embedding tables stay float32 in
optcli's variants but the last two, which quantize them to int8 (`embeddings: true`) as
onnxruntime's default op types do with its Gather): float32; int8 weights only; W8A8 dynamic
per token; W8A8 static with each observer (minmax, percentile 99.99, mse, kl); SmoothQuant
(alpha 0.5) + W8A8 dynamic and static; and onnxruntime's `quantize_dynamic` (per channel,
QInt8) on optcli's float ONNX export, with its default op types and with MatMul only.
Calibration: the 128 entries of sample_models/devil_calibration.jsonl (disjoint from the
evaluation pairs). Per variant: mean embedding cosine to float32 over the 2N texts, retrieval
top-1/MRR on the first N pairs, file size (optcli .npz / .onnx; an optcli file also carries the
tokenizer, ~0.2 MB, which the .onnx does not: "MB w/o tok" is the same model saved without it)
and latency at batch 8 relative to the same engine's float32 model, interleaved in one process
(optcli.bench.measure).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from optcli.bench import measure  # noqa: E402
from optcli.interop.hf import import_hf  # noqa: E402
from optcli.io import save_model  # noqa: E402
from optcli.runtime import Runtime  # noqa: E402
from optcli.steps import activations, quantize, smoothquant  # noqa: E402
from optcli.steps.base import StepContext  # noqa: E402
from optcli.text.retrieval import (  # noqa: E402
    embed,
    load_pairs,
    rank_metrics,
    text_dataset,
    tokenize,
)

MINILM = ROOT / "real_models" / "minilm"
CALIB = ROOT / "sample_models" / "devil_calibration.jsonl"
PAIRS = ROOT / "sample_models" / "devil_retrieval.jsonl"
LAYERS = ["layer.*"]


def variants(model, ctx):
    """(name, model) for every optcli variant, built step by step."""
    def q(m):
        return quantize.apply(m, quantize.Config(layers=LAYERS), ctx)[0]

    def act(m, **kw):
        return activations.apply(m, activations.Config(layers=LAYERS, **kw), ctx)[0]
    w8 = q(model)
    smooth = q(smoothquant.apply(model, smoothquant.Config(layers=LAYERS), ctx)[0])
    yield "float32", model
    yield "int8 weights only", w8
    yield "W8A8 dynamic", act(w8, mode="dynamic")
    for obs in ("minmax", "percentile", "mse", "kl"):
        yield f"W8A8 static {obs}", act(w8, mode="static", observer=obs)
    yield "smoothquant + W8A8 dynamic", act(smooth, mode="dynamic")
    for gran in ("channel", "tensor"):               # a scale per table row, or per table
        tables = quantize.apply(w8, quantize.Config(embeddings=True, layers=["embed.*"],
                                                    granularity=gran), ctx)[0]
        yield f"W8A8 dynamic + int8 tables ({gran})", act(tables, mode="dynamic")
    yield "smoothquant + W8A8 static mse", act(smooth, mode="static", observer="mse")


class Ort:
    """onnxruntime behind optcli's `run(feeds) -> {name: array}`."""

    def __init__(self, path: Path):
        import onnxruntime as ort
        self.s = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        self.names = {i.name for i in self.s.get_inputs()}

    def run(self, feeds):
        return {"embedding": self.s.run(["embedding"], {k: v for k, v in feeds.items()
                                                        if k in self.names})[0]}


def ort_variants(model, tmp: Path):
    """(name, float path, quantized path) for onnxruntime's quantize_dynamic per channel."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from optcli.interop.onnx_export import export_onnx
    fp = tmp / "float.onnx"
    onnx.save(export_onnx(model), fp)
    for name, ops in (("ORT quantize_dynamic per-channel", None),
                      ("ORT quantize_dynamic per-channel, MatMul only", ["MatMul"])):
        out = tmp / f"q{len(ops or [])}.onnx"
        quantize_dynamic(str(fp), str(out), per_channel=True, weight_type=QuantType.QInt8,
                         op_types_to_quantize=ops)
        yield name, fp, out


def row(name, model, runner, base_runner, texts, n, ref, feeds, size, repeats):
    """One variant: agreement with float32 (`ref`), retrieval, size and latency ratio."""
    emb = embed(model, texts, runtime=runner)                       # [2N, D]
    cos = (emb * ref).sum(1) / np.linalg.norm(emb, axis=1) / np.linalg.norm(ref, axis=1)
    t = measure([lambda: base_runner.run(feeds), lambda: runner.run(feeds)], batch=8,
                repeats=repeats)
    return {"variant": name, "mean_cosine": float(cos.mean()), "min_cosine": float(cos.min()),
            **rank_metrics(emb[:n], emb[n:]), "bytes": size,
            "latency_ratio": t[1].median_ms / t[0].median_ms, "ms": t[1].median_ms}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pairs", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--only", default="", help="comma-separated substrings of variant names "
                    "to run (float32 always runs: it is the reference)")
    args = ap.parse_args()
    if not (MINILM / "model.safetensors").is_file():
        raise SystemExit(f"{MINILM} missing: python scripts/fetch_real_models.py --only minilm")
    model = import_hf(str(MINILM))
    calib = text_dataset(model, CALIB, samples=128)
    ctx = StepContext(calibration=lambda: calib.inputs)
    pairs = load_pairs(PAIRS)[:args.pairs]
    n, texts = len(pairs), [q for q, _ in pairs] + [d for _, d in pairs]
    ids8, mask8 = tokenize(model, texts[n:n + 8])
    feeds = {"input_ids": ids8, "attention_mask": mask8}
    rows, ref, base = [], None, Runtime(model)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        keep = [k for k in args.only.split(",") if k]
        wanted = lambda name: name == "float32" or not keep or any(  # noqa: E731
            k in name for k in keep)
        for name, m in variants(model, ctx):
            if not wanted(name):
                continue
            save_model(m, tmp / "m.npz", force=True)
            rt = Runtime(m)
            ref = embed(model, texts, runtime=rt) if ref is None else ref
            rows.append(row(name, model, rt, base, texts, n, ref, feeds,
                            (tmp / "m.npz").stat().st_size, args.repeats))
            rows[-1]["bytes_without_tokenizer"] = save_model(m.replace(extra={
                k: v for k, v in m.extra.items() if k != "tokenizer"}), tmp / "n.npz", force=True)
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
        for name, fp, qp in ort_variants(model, tmp):
            if not wanted(name):
                continue
            rows.append(row(name, model, Ort(qp), Ort(fp), texts, n, ref, feeds, qp.stat().st_size,
                            args.repeats))
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    print(json.dumps(rows, indent=2) if args.json else render(rows, n))


def render(rows, n) -> str:
    out = [f"all-MiniLM-L6-v2 W8A8, Devil's Dictionary first {n} pairs; latency at batch 8 "
           "relative to the same engine's float32", "",
           f"{'variant':<48}{'mean cos':>9}{'min cos':>9}{'top-1':>7}{'MRR':>7}{'MB':>8}"
           f"{'MB w/o tok':>11}{'lat x':>7}"]
    for r in rows:
        bare = r.get("bytes_without_tokenizer", r["bytes"])      # .onnx carries no tokenizer
        out.append(f"{r['variant']:<48}{r['mean_cosine']:>9.4f}{r['min_cosine']:>9.4f}"
                   f"{r['top1']:>7.3f}{r['mrr']:>7.3f}{r['bytes'] / 1e6:>8.2f}"
                   f"{bare / 1e6:>11.2f}{r['latency_ratio']:>7.2f}")
    return "\n".join(out)


if __name__ == "__main__":
    main()
