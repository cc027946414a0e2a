"""Sentence-encoder retrieval: pairs files, batched embedding equal to one-text-at-a-time
runs (padding is masked out), and the ranking metrics on known cases."""

from __future__ import annotations

import json

import numpy as np
import pytest

from optcli.errors import DataError, InputError
from optcli.graph import Graph
from optcli.interop.bert import from_hf_bert
from optcli.runtime import Runtime
from optcli.text.retrieval import embed, load_pairs, rank_metrics, retrieval

WORDS = "the cat sat on a mat dog ran far away big small red blue".split()
CONFIG = {"vocab_size": 4 + len(WORDS), "hidden_size": 16, "num_hidden_layers": 1,
          "num_attention_heads": 2, "intermediate_size": 32, "max_position_embeddings": 8}


def tiny_tokenizer_json(max_length: int = 8) -> dict:
    """A word-level tokenizer with BERT's [CLS] ... [SEP] template, as tokenizer.json text."""
    tokenizers = pytest.importorskip("tokenizers")
    vocab = {w: i for i, w in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]"] + WORDS)}
    tok = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    tok.post_processor = tokenizers.processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    return {"kind": "hf_json", "json": tok.to_str(), "max_length": max_length}


def tiny_encoder(seed: int = 0):
    rng = np.random.default_rng(seed)
    shapes = {"embeddings.word_embeddings.weight": (CONFIG["vocab_size"], 16),
              "embeddings.position_embeddings.weight": (8, 16),
              "embeddings.token_type_embeddings.weight": (2, 16),
              "embeddings.LayerNorm.weight": (16,), "embeddings.LayerNorm.bias": (16,)}
    layer = {"attention.self.query": (16, 16), "attention.self.key": (16, 16),
             "attention.self.value": (16, 16), "attention.output.dense": (16, 16),
             "attention.output.LayerNorm": (16,), "intermediate.dense": (32, 16),
             "output.dense": (16, 32), "output.LayerNorm": (16,)}
    for name, shape in layer.items():
        shapes[f"encoder.layer.0.{name}.weight"] = shape
        shapes[f"encoder.layer.0.{name}.bias"] = shape[:1]
    tensors = {k: (0.5 * rng.standard_normal(s)).astype(np.float32) for k, s in shapes.items()}
    model = from_hf_bert(CONFIG, tensors, "tiny", {"mode": "mean", "normalize": True})
    return model.replace(extra={"tokenizer": tiny_tokenizer_json()})


TEXTS = ["the cat sat", "a big red dog ran far away", "small blue mat", "the dog",
         "cat sat on the mat", "far far away on a big small red blue mat"]


def test_batched_embedding_equals_one_text_at_a_time():
    model = tiny_encoder()
    together = embed(model, TEXTS, batch_size=4)                  # sorted, padded batches
    alone = np.concatenate([embed(model, [t], batch_size=1) for t in TEXTS])
    assert together.shape == (len(TEXTS), 16)
    np.testing.assert_allclose(together, alone, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)


def test_long_texts_are_truncated_to_max_length():
    model = tiny_encoder()           # 8 positions: a longer text would not fit the table
    y = embed(model, [" ".join(WORDS * 3)], runtime=Runtime(model))
    assert y.shape == (1, 16) and np.isfinite(y).all()


def test_retrieval_against_itself_and_a_reference():
    model = tiny_encoder()
    report = retrieval(model, [(t, t) for t in TEXTS], reference=model)
    assert report["top1"] == 1.0 and report["mrr"] == 1.0 and report["pairs"] == len(TEXTS)
    assert report["cosine_to_reference"] == pytest.approx(1.0, abs=1e-6)
    other = retrieval(model, [(t, t) for t in TEXTS], reference=tiny_encoder(seed=1))
    assert other["cosine_to_reference"] < 0.99


def test_rank_metrics_on_a_known_case():
    q = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    d = np.array([[1.0, 0.0], [1.0, 0.1], [0.0, 1.0]])
    # query 0 finds doc 0; query 1 prefers doc 2; query 2 prefers doc 1 and ties with doc 0
    # (ties count in favour of the correct document): ranks 1, 2, 2.
    m = rank_metrics(q, d)
    assert m["top1"] == pytest.approx(1 / 3) and m["mrr"] == pytest.approx(2 / 3)


def test_load_pairs_and_its_errors(tmp_path):
    good = tmp_path / "p.jsonl"
    good.write_text(json.dumps({"query": "q", "document": "d"}) + "\n\n")
    assert load_pairs(good) == [("q", "d")]
    for body, words in [('{"query": "q", "document": "d"}\n{oops\n', r"p\.jsonl:2: not valid"),
                        ('{"query": "q"}\n', r"p\.jsonl:1: expected an object"),
                        ("\n", "no pairs")]:
        good.write_text(body)
        with pytest.raises(DataError, match=words):
            load_pairs(good)


def test_models_without_tokenizer_or_embedding_are_refused():
    model = tiny_encoder()
    with pytest.raises(InputError, match="no tokenizer kept with the model"):
        embed(model.replace(extra={}), ["the cat"])
    hidden = model.replace(graph=Graph(model.graph.nodes[:-2], model.graph.inputs, ()))
    with pytest.raises(InputError, match="no \\[batch, dim\\] output meaning 'embedding'"):
        embed(hidden, ["the cat"])
