"""charlm: a 2-block pre-LN character-level GPT on The Devil's Dictionary (Bierce, 1911).

The text comes from the Debian package `dict-devil`; the dictfmt header and the trailing
alphabet line are dropped. The tokenizer is one id per character seen at least MIN_CHAR_COUNT
times (sorted), plus an unknown id at the end, and is stored in the file's
`extra.tokenizer`. The model has learned positions, so sequences are at most CONTEXT long.
"""

from __future__ import annotations

import gzip
from collections import Counter
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from optcli.builder import GraphBuilder
from optcli.graph import Model

from .export import add_layernorm, add_linear, np32
from .recipes import SOURCE, Recipe

DEVIL = Path("/usr/share/dictd/devil.dict.dz")
CONTEXT = 128                        # charlm context length (learned positions)
MIN_CHAR_COUNT = 5                   # rarer characters map to the unknown id
UNK = "\ufffd"                       # the unknown id's entry in the vocabulary


# ----------------------------------------------------------------------------- text, tokenizer

def load_devil_text() -> str:
    """The dictionary proper: dictfmt's header entries and trailing alphabet line dropped."""
    text = gzip.open(DEVIL).read().decode("latin-1")
    text = text[text.index("ABASEMENT, n."):].rstrip()
    if text.endswith("abcdefghijklmnopqrstuvwxyz"):
        text = text[:text.rindex("\n") + 1]
    return text


def char_vocab(text: str) -> tuple[list[str], int]:
    """Characters seen >= MIN_CHAR_COUNT times (sorted) plus one unknown entry at the end."""
    vocab = sorted(c for c, n in Counter(text).items() if n >= MIN_CHAR_COUNT)
    return vocab + [UNK], len(vocab)


def encode(text: str, vocab: list[str], unk_id: int) -> np.ndarray:
    index = {c: i for i, c in enumerate(vocab[:unk_id])}
    return np.array([index.get(c, unk_id) for c in text], dtype=np.int64)


def windows(ids: np.ndarray, n: int) -> np.ndarray:
    """n non-overlapping [CONTEXT] windows spread evenly over ids -> int64 [n, CONTEXT]."""
    starts = np.linspace(0, len(ids) - CONTEXT, n).astype(int)
    assert np.all(np.diff(starts) >= CONTEXT), "text too short for non-overlapping windows"
    return np.stack([ids[s:s + CONTEXT] for s in starts])


# ----------------------------------------------------------------------------- torch model

class Block(nn.Module):
    """Pre-LN transformer block: x + attn(ln1(x)), then + mlp(ln2(x))."""

    def __init__(self, d: int, heads: int, dropout: float):
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.q, self.k, self.v, self.out = (nn.Linear(d, d) for _ in range(4))
        self.fc, self.proj = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)
        self.drop = nn.Dropout(dropout)

    def attention(self, x):                     # x [B, T, D] -> [B, T, D]
        B, T, D = x.shape
        split = lambda t: t.view(B, T, self.heads, D // self.heads).transpose(1, 2)  # noqa: E731
        y = F.scaled_dot_product_attention(split(self.q(x)), split(self.k(x)),
                                           split(self.v(x)), is_causal=True)  # [B, H, T, Dh]
        return self.out(y.transpose(1, 2).reshape(B, T, D))

    def forward(self, x):
        x = x + self.drop(self.attention(self.ln1(x)))
        return x + self.drop(self.proj(F.gelu(self.fc(self.ln2(x)))))


class CharLM(nn.Module):
    def __init__(self, vocab: int, d: int = 128, layers: int = 2, heads: int = 4,
                 dropout: float = 0.1):
        super().__init__()
        self.heads = heads
        self.tok, self.pos = nn.Embedding(vocab, d), nn.Embedding(CONTEXT, d)
        self.blocks = nn.ModuleList(Block(d, heads, dropout) for _ in range(layers))
        self.ln_f, self.head = nn.LayerNorm(d), nn.Linear(d, vocab)
        self.drop = nn.Dropout(dropout)

    def forward(self, ids):                     # ids [B, T] -> logits [B, T, V]
        h = self.drop(self.tok(ids) + self.pos(torch.arange(ids.shape[1])))
        for blk in self.blocks:
            h = blk(h)
        return self.head(self.ln_f(h))


# ----------------------------------------------------------------------------- export

def export_block(b: GraphBuilder, h: str, p: str, blk: Block) -> str:
    """One pre-LN block as optcli nodes named after the torch modules (`blocks.0.attn.q`)."""
    x = add_layernorm(b, h, f"{p}.ln1", blk.ln1)
    qkv = {role: add_linear(b, x, f"{p}.attn.{role}", getattr(blk, role)) for role in "qkv"}
    a = b.add("attention", name=f"{p}.attn", attrs={"num_heads": blk.heads, "causal": True}, **qkv)
    h = b.add("add", name=f"{p}.res1", a=h, b=add_linear(b, a, f"{p}.attn.out", blk.out))
    x = add_layernorm(b, h, f"{p}.ln2", blk.ln2)
    x = b.add("gelu", name=f"{p}.mlp.gelu", x=add_linear(b, x, f"{p}.mlp.fc", blk.fc))
    return b.add("add", name=f"{p}.res2", a=h, b=add_linear(b, x, f"{p}.mlp.proj", blk.proj))


def export_charlm(net: CharLM, r: Recipe, vocab: list[str], unk_id: int, info: dict) -> Model:
    task = {"kind": "language_model", "architecture": "pre-LN GPT, character level",
            "context_length": CONTEXT, "vocab_size": len(vocab)}
    prov = {"source": SOURCE, "training": r.record(), **info}
    extra = {"tokenizer": {"kind": "char", "vocab": vocab, "unk_id": unk_id}}
    b = GraphBuilder("charlm", task=task, provenance=prov, extra=extra)
    ids = b.input("ids", ["batch", "seq"], dtype="int64", meaning="token_ids")
    tok = b.add("embedding", name="tok_emb", ids=ids, weight=b.weight("tok_emb.weight",
                                                                     np32(net.tok.weight)))
    pos = b.add("positions", name="positions", ids=ids)
    pos = b.add("embedding", name="pos_emb", ids=pos, weight=b.weight("pos_emb.weight",
                                                                     np32(net.pos.weight)))
    h = b.add("add", name="embed", a=tok, b=pos)                       # [B, T, D]
    for i, blk in enumerate(net.blocks):
        h = export_block(b, h, f"blocks.{i}", blk)
    h = add_linear(b, add_layernorm(b, h, "ln_f", net.ln_f), "head", net.head)
    b.output(h, "logits", ["batch", "seq", len(vocab)], meaning="logits")
    return b.build()
