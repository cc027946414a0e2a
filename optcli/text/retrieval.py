"""Sentence-encoder evaluation: embed texts, and a query -> document retrieval task.

    pairs = load_pairs("sample_models/devil_retrieval.jsonl")   # [(query, document), ...]
    report = retrieval(model, pairs, reference=original)
    # {"pairs": 200, "top1": 0.315, "mrr": 0.402, "cosine_to_reference": 0.998, ...}

Query i's correct document is document i; documents are ranked by cosine similarity. top1 is
the fraction of queries whose correct document ranks first, mrr the mean of 1 / rank
(Voorhees 1999, "The TREC-8 Question Answering Track Report"). Top-1 over a few hundred
queries moves a few points by chance, so against a reference model the mean cosine between
the two models' embeddings of the same texts (queries and documents) is also reported: it
moves smoothly with the damage a compression step does.

Texts are tokenized with the tokenizer kept in `model.extra["tokenizer"]` (needs the
`tokenizers` package: the 'text' extra), sorted by length and run in batches padded to the
batch's longest text, with the padding masked out.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from optcli.data import Dataset
from optcli.errors import DataError, InputError
from optcli.graph import Model
from optcli.runtime import Runtime
from optcli.text.tokenizer import load_tokenizer


def load_pairs(path: str | Path) -> list[tuple[str, str]]:
    """(query, document) pairs from a .jsonl file of {"query": ..., "document": ...} lines."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot read ({e})") from None
    pairs = []
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}:{n}: not valid JSON ({e})") from None
        if not isinstance(row, dict) or not all(isinstance(row.get(k), str) and row[k].strip()
                                                for k in ("query", "document")):
            raise DataError(f"{path}:{n}: expected an object with non-empty string fields "
                            "'query' and 'document'")
        pairs.append((row["query"], row["document"]))
    if not pairs:
        raise DataError(f"{path}: no pairs")
    return pairs


def embed(model: Model, texts: list[str], batch_size: int = 32,
          runtime: Runtime | None = None) -> np.ndarray:
    """The model's embedding of each text: [N, D] float32, rows in the order of `texts`.

    `runtime` is anything with optcli's `run(feeds) -> {output: array}` (the benchmarks pass
    onnxruntime and torch adapters); by default a `Runtime(model)`."""
    ids_name, mask_name, out_name = _io_names(model)
    runtime = runtime or Runtime(model)
    encoded = _encode(model, texts)
    order = np.argsort([len(e) for e in encoded], kind="stable")   # little padding per batch
    rows: dict[int, np.ndarray] = {}
    for start in range(0, len(texts), batch_size):
        chosen = order[start:start + batch_size]
        ids, mask = _pad([encoded[i] for i in chosen])             # [B, T] each
        y = runtime.run({ids_name: ids, mask_name: mask})[out_name]  # [B, D]
        rows.update(zip(chosen.tolist(), y))
    return np.stack([rows[i] for i in range(len(texts))]).astype(np.float32)


def retrieval(model: Model, pairs: list[tuple[str, str]], reference: Model | None = None,
              batch_size: int = 32) -> dict[str, Any]:
    """top1 and mrr of query -> document retrieval; with `reference`, its own top1/mrr and the
    mean cosine between the two models' embeddings of the same queries and documents."""
    queries, docs = [q for q, _ in pairs], [d for _, d in pairs]
    emb = embed(model, queries + docs, batch_size)                 # [2N, D]
    report: dict[str, Any] = {"pairs": len(pairs), **rank_metrics(emb[:len(pairs)],
                                                                  emb[len(pairs):])}
    if reference is not None:
        ref = embed(reference, queries + docs, batch_size)
        ref_metrics = rank_metrics(ref[:len(pairs)], ref[len(pairs):])
        report.update({f"reference_{k}": v for k, v in ref_metrics.items()})
        report["cosine_to_reference"] = float(np.mean(_rowwise_cosine(emb, ref)))
    return report


def rank_metrics(queries: np.ndarray, docs: np.ndarray) -> dict[str, float]:
    """top1 and mrr when query i's correct document is docs[i] (ranked by cosine)."""
    sim = _unit(queries) @ _unit(docs).T                           # [N, N]
    # Ties are resolved in favour of the correct document (rank 1 + strictly better ones).
    rank = 1 + (sim > np.diag(sim)[:, None]).sum(axis=1)
    return {"top1": float(np.mean(rank == 1)), "mrr": float(np.mean(1.0 / rank))}


def _rowwise_cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (_unit(a) * _unit(b)).sum(axis=1)


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _io_names(model: Model) -> tuple[str, str, str]:
    """Names of the token-id input, the attention-mask input and the [B, D] embedding output."""
    by_meaning = {vi.meaning: vi.name for vi in model.graph.inputs}
    outputs = [vi for vi in model.graph.outputs if vi.meaning == "embedding"]
    if "token_ids" not in by_meaning or "attention_mask" not in by_meaning:
        raise InputError(f"model '{model.name}': a sentence encoder needs inputs meaning "
                         "'token_ids' and 'attention_mask'")
    if not outputs or len(outputs[0].shape) != 2:
        raise InputError(f"model '{model.name}': no [batch, dim] output meaning 'embedding' "
                         "(import the encoder with its pooling)")
    return by_meaning["token_ids"], by_meaning["attention_mask"], outputs[0].name


def text_dataset(model: Model, path: str | Path, samples: int | None = None) -> Dataset:
    """A calibration set from a .jsonl of pairs: each query and each document one sample
    (the first `samples` texts), tokenized into the encoder's ids and attention mask, padded
    to the longest (calibration statistics skip the masked padding)."""
    ids_name, mask_name, _ = _io_names(model)
    texts = [t for pair in load_pairs(path) for t in pair][:samples]
    ids, mask = tokenize(model, texts)
    return Dataset(str(path), {ids_name: ids, mask_name: mask})


def tokenize(model: Model, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """One padded batch for `texts`: token ids [B, T] int64 and attention mask [B, T]."""
    return _pad(_encode(model, texts))


def _pad(seqs: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    """ids [B, T] (0 in the padding, which the mask hides) and mask [B, T] float32."""
    T = max(len(s) for s in seqs)
    ids = np.zeros((len(seqs), T), np.int64)
    mask = np.zeros((len(seqs), T), np.float32)
    for i, s in enumerate(seqs):
        ids[i, :len(s)], mask[i, :len(s)] = s, 1.0
    return ids, mask


def _encode(model: Model, texts: list[str]) -> list[list[int]]:
    """Token ids of each text ([CLS] ... [SEP] added, truncated to the tokenizer's max_length)."""
    return load_tokenizer(model, add_special_tokens=True).encode_batch(list(texts))
