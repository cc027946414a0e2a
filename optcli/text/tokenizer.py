"""The tokenizer kept with a model, as one small interface for every kind.

`model.extra["tokenizer"]` is one of
    {"kind": "hf_json", "json": "<tokenizer.json text>", "bos_id": 1, "eos_id": 2,
     "max_length": 512}                      # a Hugging Face `tokenizers` file, run by the
                                              # `tokenizers` package (the 'text' extra)
    {"kind": "char", "vocab": ["\\n", " ", ...], "unk_id": 79}
                                              # one id per character, unknown ones -> unk_id

    tok = load_tokenizer(model)
    ids = tok.encode("The capital of France is")    # list[int]
    text = tok.decode(ids)

`add_special_tokens` (hf_json only) applies the file's post-processor (BOS, [CLS] ... [SEP]):
encoders want it, a language model scored on raw text usually does not.
"""

from __future__ import annotations

from typing import Any, Protocol

from optcli.errors import InputError
from optcli.graph import Model

KINDS = ("hf_json", "char")


class Tokenizer(Protocol):
    bos_id: int | None
    eos_id: int | None

    def encode(self, text: str) -> list[int]: ...

    def encode_batch(self, texts: list[str]) -> list[list[int]]: ...

    def decode(self, ids: list[int]) -> str: ...


def load_tokenizer(model: Model, add_special_tokens: bool = True) -> Tokenizer:
    """The tokenizer in `model.extra["tokenizer"]`; InputError when there is none or it is bad."""
    spec = model.extra.get("tokenizer")
    if not isinstance(spec, dict):
        raise InputError(f"model '{model.name}': no tokenizer kept with the model "
                         "(import the model with its tokenizer files)")
    kind = spec.get("kind")
    if kind == "hf_json":
        return HFTokenizer(spec, add_special_tokens, model.name)
    if kind == "char":
        return CharTokenizer(spec, model.name)
    raise InputError(f"model '{model.name}': tokenizer kind {kind!r} unknown "
                     f"(valid: {', '.join(KINDS)})")


class HFTokenizer:
    """A Hugging Face tokenizer.json run by the `tokenizers` package (no padding)."""

    def __init__(self, spec: dict[str, Any], add_special_tokens: bool, model_name: str):
        try:
            from tokenizers import Tokenizer as _Tok
        except ImportError:
            raise InputError("text needs the 'text' extra: pip install 'optcli[text]'") from None
        try:
            self._tok = _Tok.from_str(spec["json"])
        except Exception as e:        # tokenizers raises plain Exception; a missing 'json' key
            raise InputError(f"model '{model_name}': tokenizer.json does not load ({e})") from None
        self._tok.no_padding()
        self.max_length = spec.get("max_length")
        if self.max_length:
            self._tok.enable_truncation(int(self.max_length))
        self.add_special_tokens = add_special_tokens
        self.bos_id, self.eos_id = spec.get("bos_id"), spec.get("eos_id")

    def encode(self, text: str) -> list[int]:
        return self._tok.encode(text, add_special_tokens=self.add_special_tokens).ids

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        enc = self._tok.encode_batch(list(texts), add_special_tokens=self.add_special_tokens)
        return [e.ids for e in enc]

    def decode(self, ids: list[int]) -> str:
        return self._tok.decode([int(i) for i in ids], skip_special_tokens=False)


class CharTokenizer:
    """One token per character from a fixed vocabulary; characters outside it map to unk_id."""

    bos_id = eos_id = None

    def __init__(self, spec: dict[str, Any], model_name: str):
        vocab = spec.get("vocab")
        if not isinstance(vocab, list) or not all(isinstance(c, str) for c in vocab):
            raise InputError(f"model '{model_name}': char tokenizer needs a 'vocab' list")
        self.vocab = vocab
        self.index = {c: i for i, c in enumerate(vocab)}
        self.unk_id = spec.get("unk_id")

    def encode(self, text: str) -> list[int]:
        ids = [self.index.get(c, self.unk_id) for c in text]
        if None in ids:
            bad = next(c for c in text if c not in self.index)
            raise InputError(f"character {bad!r} is not in the vocabulary and there is no unk_id")
        return ids

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [self.encode(t) for t in texts]

    def decode(self, ids: list[int]) -> str:
        # unk_id may lie one past the vocabulary (the charlm's): it decodes to U+FFFD
        return "".join(self.vocab[i] if 0 <= i < len(self.vocab) else "\ufffd" for i in ids)
