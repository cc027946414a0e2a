"""`optcli eval` on text: perplexity of a language model over a .txt file, retrieval quality
of a sentence encoder over a .jsonl of {"query", "document"} pairs. The data kind is told from
the content: a zip is an .npz dataset, a first line holding a JSON object is a pairs file,
anything else is plain text."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from optcli.errors import DataError
from optcli.graph import Model
from optcli.progress import NoProgress, Progress
from optcli.text.perplexity import perplexity
from optcli.text.retrieval import load_pairs, retrieval
from optcli.text.tokenizer import load_tokenizer

DEFAULT_WINDOW = 512


def data_kind(path: Path) -> str:
    """'npz', 'pairs' or 'text', from the file's first bytes."""
    if not path.is_file():
        raise DataError(f"{path}: data file not found")
    with open(path, "rb") as f:
        head = f.read(4096)
    if head[:4] == b"PK\x03\x04":
        return "npz"
    first = head.lstrip().split(b"\n", 1)[0].strip()
    return "pairs" if first.startswith(b"{") else "text"


def eval_text(model: Model, path: Path, *, reference: Model | None = None,
              window: int | None = None, stride: int | None = None,
              max_tokens: int | None = None, progress: Progress = NoProgress()
              ) -> dict[str, Any]:
    if data_kind(path) == "pairs":
        if model.task.get("kind") != "embedding":
            raise DataError(f"{path}: query/document pairs need an embedding model, "
                            f"'{model.name}' is a {model.task.get('kind')} model")
        res = retrieval(model, load_pairs(path), reference)
        return {"metric": "top1", "value": res["top1"], "samples": res["pairs"], **res}
    if model.task.get("kind") != "language_model":
        raise DataError(f"{path}: plain text needs a language model, '{model.name}' is a "
                        f"{model.task.get('kind')} model")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text ({e})") from None
    ids = load_tokenizer(model, add_special_tokens=False).encode(text)[:max_tokens]
    window = window or min(DEFAULT_WINDOW, max_context(model) or DEFAULT_WINDOW)
    res = perplexity(model, ids, window, stride or max(window // 2, 1), progress)
    out = {"metric": "perplexity", "value": res["perplexity"], "samples": res["tokens"], **res}
    if reference is not None:
        out["reference_perplexity"] = perplexity(reference, ids, res["window"], res["stride"],
                                                 progress)["perplexity"]
    return out


def max_context(model: Model) -> int | None:
    """Rows of a learned position table (the longest sequence the model accepts), if any."""
    pos_values = {n.outputs[0] for n in model.graph.nodes if n.op == "positions"}
    for n in model.graph.nodes:
        if n.op == "embedding" and n.inputs.get("ids") in pos_values:
            return model.tensors[n.inputs["weight"]].shape[0]
    return None
