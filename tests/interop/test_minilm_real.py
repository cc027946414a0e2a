"""all-MiniLM-L6-v2 (real_models/minilm, fetched by scripts/fetch_real_models.py): sentence
embeddings equal transformers' and onnxruntime's on the ONNX export (cosine >= 0.9999), and
retrieval on the first 40 Devil's Dictionary pairs gives the reference's top-1.
Skipped when the model is not fetched; the full 200-pair run is benchmarks/real_models_minilm.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from optcli.interop.hf import import_hf
from optcli.text.retrieval import embed, load_pairs, rank_metrics, tokenize

ROOT = Path(__file__).resolve().parents[2]
MINILM = ROOT / "real_models" / "minilm"
PAIRS = ROOT / "sample_models" / "devil_retrieval.jsonl"
pytestmark = pytest.mark.skipif(not (MINILM / "model.safetensors").is_file(),
                                reason="real_models/minilm not fetched "
                                       "(python scripts/fetch_real_models.py --only minilm)")
SENTENCES = ["A decent and customary mental attitude in the presence of wealth.",
             "abasement", "The cat sat on the mat.", "Rubbish in front of a fort.",
             "Sentence embeddings map text to vectors.", "hello",
             "An act whereby a sovereign attests his sense of the high temperature of the "
             "throne.", "Quantization makes neural networks smaller and faster."]


@pytest.fixture(scope="module")
def minilm():
    pytest.importorskip("tokenizers")
    return import_hf(MINILM)


def transformers_embed(texts: list[str], model) -> np.ndarray:
    """HF BertModel + mean pooling + L2 norm on optcli's tokenization (same ids, same mask)."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    bert = transformers.BertModel.from_pretrained(str(MINILM)).eval()
    ids, mask = tokenize(model, texts)
    with torch.no_grad():
        h = bert(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask))
    h = h.last_hidden_state.numpy()
    pooled = (h * mask[:, :, None]).sum(1) / mask.sum(1, keepdims=True)
    return pooled / np.linalg.norm(pooled, axis=1, keepdims=True)


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def test_import(minilm):
    params = sum(t.size for t in minilm.tensors.values())
    # 104 tensors: pooler (2) and position_ids skipped, token_type folded into positions.
    assert len(minilm.tensors) == 100 and 22_500_000 < params < 22_700_000
    assert minilm.graph.outputs[0].shape == ("batch", 384)
    assert minilm.extra["tokenizer"]["max_length"] == 256


def test_embeddings_match_transformers(minilm):
    want = transformers_embed(SENTENCES, minilm)
    got = embed(minilm, SENTENCES, batch_size=4)
    assert _cosines(got, want).min() >= 0.9999


def test_embeddings_match_onnxruntime_on_the_export(minilm):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from optcli.interop.onnx_export import export_onnx
    session = ort.InferenceSession(export_onnx(minilm).SerializeToString(),
                                   providers=["CPUExecutionProvider"])
    ids, mask = tokenize(minilm, SENTENCES)
    want = session.run(["embedding"], {"input_ids": ids, "attention_mask": mask})[0]
    assert _cosines(embed(minilm, SENTENCES), want).min() >= 0.9999


def test_devil_retrieval_top1_equals_transformers(minilm):
    pairs = load_pairs(PAIRS)[:40]
    queries, docs = [q for q, _ in pairs], [d for _, d in pairs]
    ours = embed(minilm, queries + docs)
    ref = np.concatenate([transformers_embed(queries, minilm),
                          transformers_embed(docs, minilm)])
    assert _cosines(ours, ref).min() >= 0.9999
    ours_m, ref_m = rank_metrics(ours[:40], ours[40:]), rank_metrics(ref[:40], ref[40:])
    assert ours_m["top1"] == ref_m["top1"]
    assert ours_m["mrr"] == pytest.approx(ref_m["mrr"], abs=1e-3)
