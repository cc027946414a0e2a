"""Rebuild a Hugging Face `tokenizer.json` from the tokenizer a GGUF file embeds.

GGUF keys (ggml `docs/gguf.md`, "Tokenizer"): `tokenizer.ggml.model` ("gpt2" = byte-level BPE),
`tokenizer.ggml.pre` (llama.cpp's name for the pre-tokenizer regex), `.tokens`, `.token_type`
(1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte), `.merges` ("a b" strings in
rank order), `.bos_token_id`, `.eos_token_id`, `.add_bos_token`.

The JSON is assembled by hand (the `tokenizers` serialisation format, BPE model) rather than
with the `tokenizers` package, so `optcli import` works without the optional `text` extra; the
package is only needed to *run* the tokenizer. Byte-level BPE tokens are already stored in
GPT-2's byte-to-unicode alphabet ("Ġ" for a space), so they go into the vocab unchanged.
"""

from __future__ import annotations

import json
from typing import Any

_BYTE_LEVEL = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
               "use_regex": True}
_LLAMA3_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
                 r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")

_DIGITS_THEN_GPT2 = {"type": "Sequence", "pretokenizers": [
    {"type": "Digits", "individual_digits": True}, _BYTE_LEVEL]}

# llama.cpp pre-tokenizer name -> the HF pre_tokenizer that splits text the same way
# (llama-vocab.cpp: "smollm", "starcoder", ... split "\p{N}" first, then GPT-2's regex)
PRE_TOKENIZERS: dict[str, dict[str, Any]] = {
    **{k: _BYTE_LEVEL for k in ("default", "gpt2", "mpt", "olmo", "jais")},
    **{k: _DIGITS_THEN_GPT2 for k in ("smollm", "starcoder", "refact", "command-r",
                                      "codeshell", "exaone")},
    "llama-bpe": {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": _LLAMA3_REGEX}, "behavior": "Isolated",
         "invert": False},
        {**_BYTE_LEVEL, "use_regex": False}]},
}
SPECIAL_TYPES = (3, 4)          # control and user-defined tokens are matched before BPE


def tokenizer_from_gguf(meta: dict[str, Any]) -> tuple[dict[str, Any] | None, str]:
    """(model.extra["tokenizer"] entry or None, a note saying what was done)."""
    kind = meta.get("tokenizer.ggml.model")
    pre = meta.get("tokenizer.ggml.pre", "default")
    tokens = meta.get("tokenizer.ggml.tokens")
    if kind != "gpt2" or not isinstance(tokens, list) or not all(isinstance(t, str)
                                                                  for t in tokens):
        return None, f"tokenizer not imported: tokenizer.ggml.model {kind!r} is not 'gpt2'"
    merges = meta.get("tokenizer.ggml.merges", [])
    if not isinstance(merges, list) or not all(isinstance(m, str) and " " in m for m in merges):
        return None, "tokenizer not imported: tokenizer.ggml.merges are not 'a b' strings"
    if pre not in PRE_TOKENIZERS:
        return None, (f"tokenizer not imported: pre-tokenizer {pre!r} unknown "
                      f"(known: {', '.join(PRE_TOKENIZERS)})")
    bos, eos = (_token_id(meta.get(f"tokenizer.ggml.{k}_token_id"), len(tokens))
                for k in ("bos", "eos"))
    doc = {"version": "1.0", "truncation": None, "padding": None,
           "added_tokens": _added_tokens(tokens, meta.get("tokenizer.ggml.token_type")),
           "normalizer": None, "pre_tokenizer": PRE_TOKENIZERS[pre],
           "post_processor": _post_processor(tokens, bos, meta),
           "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True,
                       "use_regex": True},
           "model": _bpe(tokens, merges)}
    entry = {"kind": "hf_json", "json": json.dumps(doc, ensure_ascii=False),
             "bos_id": bos, "eos_id": eos}
    return entry, f"byte-level BPE rebuilt from GGUF (pre-tokenizer {pre!r})"


def _token_id(v: Any, n: int) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) and 0 <= v < n else None


def _added_tokens(tokens: list[str], types: Any) -> list[dict[str, Any]]:
    if not isinstance(types, list) or len(types) != len(tokens):
        return []
    return [{"id": i, "content": tokens[i], "single_word": False, "lstrip": False,
             "rstrip": False, "normalized": False, "special": t == 3}
            for i, t in enumerate(types) if t in SPECIAL_TYPES]


def _post_processor(tokens: list[str], bos: int | None, meta: dict[str, Any]) -> dict:
    """Prepend BOS when the GGUF asks for it (add_special_tokens=True), else byte-level only."""
    if not meta.get("tokenizer.ggml.add_bos_token", False) or bos is None:
        return {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False,
                "use_regex": True}
    b = tokens[bos]
    seq = [{"SpecialToken": {"id": b, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}]
    pair = seq + [{"SpecialToken": {"id": b, "type_id": 1}},
                  {"Sequence": {"id": "B", "type_id": 1}}]
    return {"type": "TemplateProcessing", "single": seq, "pair": pair,
            "special_tokens": {b: {"id": b, "ids": [bos], "tokens": [b]}}}


def _bpe(tokens: list[str], merges: list[str]) -> dict[str, Any]:
    return {"type": "BPE", "dropout": None, "unk_token": None,
            "continuing_subword_prefix": None, "end_of_word_suffix": None,
            "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
            "vocab": {t: i for i, t in enumerate(tokens)},
            "merges": [m.split(" ", 1) for m in merges]}
