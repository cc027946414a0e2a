"""BERT encoders (Devlin et al. 2019, "BERT: Pre-training of Deep Bidirectional Transformers")
from Hugging Face tensor names to an optcli graph, with sentence-transformers pooling
(Reimers & Gurevych 2019, "Sentence-BERT": mean over the non-pad tokens, then L2 norm).

    model = from_hf_bert(config, tensors, "minilm", {"mode": "mean", "normalize": True})

The graph (post-LN, as in HF `BertModel`), for ids[B, T] and mask[B, T] (1 keep, 0 pad):

    h = LN(word[ids] + pos'[positions])                       embed.ln        [B, T, D]
    per layer i:  a = attention(q(h), k(h), v(h), mask)       layer.i.attn    [B, T, D]
                  h = LN(h + out(a))                          layer.i.attn.ln
                  h = LN(h + down(gelu(up(h))))               layer.i.ffn.ln  (up: [B, T, F])
    embedding = l2normalize(meanpool(h, mask))                pool, normalize [B, D]

Stored tensors are named after the node that reads them (`layer.3.attn.q.weight`,
`layer.3.ffn.up.bias`, ...), so `layers: ["layer.*.ffn.*"]` globs read the same either way.
HF names are accepted with or without the `bert.` prefix; the pooler (`pooler.dense`) is not
used by sentence embeddings and `embeddings.position_ids` is an int64 buffer, not a weight:
both are skipped.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from optcli.builder import GraphBuilder
from optcli.errors import InputError, ModelFormatError
from optcli.graph import Model

_LAYER = {   # optcli node suffix -> HF module under encoder.layer.N
    "attn.q": "attention.self.query", "attn.k": "attention.self.key",
    "attn.v": "attention.self.value", "attn.out": "attention.output.dense",
    "attn.ln": "attention.output.LayerNorm", "ffn.up": "intermediate.dense",
    "ffn.down": "output.dense", "ffn.ln": "output.LayerNorm",
}
_CONFIG_KEYS = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                "intermediate_size", "max_position_embeddings")


class _Weights:
    """HF tensors looked up by name (with or without `bert.`), shape-checked, as float32."""

    def __init__(self, tensors: dict[str, np.ndarray]):
        self.tensors = {k.removeprefix("bert."): v for k, v in tensors.items()}

    def get(self, key: str, shape: tuple[int, ...]) -> np.ndarray:
        if key not in self.tensors:
            raise ModelFormatError(f"tensor '{key}': missing (expected shape {list(shape)})")
        a = self.tensors[key]
        if tuple(a.shape) != shape:
            raise ModelFormatError(f"tensor '{key}': shape {list(a.shape)} does not match the "
                                   f"config's {list(shape)}")
        if a.dtype.kind != "f":
            raise ModelFormatError(f"tensor '{key}': dtype {a.dtype} is not floating point")
        return np.ascontiguousarray(a, dtype=np.float32)


def check_config(config: dict[str, Any]) -> None:
    """Raise on a config this importer cannot reproduce exactly."""
    for key in _CONFIG_KEYS:
        v = config.get(key)
        if not (isinstance(v, int) and not isinstance(v, bool) and v > 0):
            raise ModelFormatError(f"config.json: '{key}' must be a positive integer, got {v!r}")
    if config["hidden_size"] % config["num_attention_heads"]:
        raise ModelFormatError("config.json: hidden_size is not divisible by "
                               "num_attention_heads")
    if config.get("hidden_act", "gelu") != "gelu":
        raise InputError(f"config.json: hidden_act {config['hidden_act']!r} not supported "
                         "(supported: 'gelu', the exact erf form)")
    if config.get("position_embedding_type", "absolute") != "absolute":
        raise InputError("config.json: only position_embedding_type 'absolute' is supported")


def from_hf_bert(config: dict[str, Any], tensors: dict[str, np.ndarray], name: str,
                 pooling: dict[str, Any] | None) -> Model:
    """The BERT encoder as a Model; `pooling` None (output last_hidden_state) or
    {"mode": "mean", "normalize": bool} (output embedding [batch, hidden])."""
    check_config(config)
    if pooling is not None and pooling.get("mode") != "mean":
        raise InputError(f"pooling mode {pooling.get('mode')!r} not supported (supported: "
                         "'mean')")
    w = _Weights(tensors)
    # Without pooling the outputs are per-token embeddings: still task kind "embedding".
    b = GraphBuilder(name, task={"kind": "embedding"})
    ids = b.input("input_ids", ["batch", "seq"], dtype="int64", meaning="token_ids")
    mask = b.input("attention_mask", ["batch", "seq"], meaning="attention_mask")
    eps = float(config.get("layer_norm_eps", 1e-12))
    h = _embeddings(b, w, config, ids, eps)
    for i in range(config["num_hidden_layers"]):
        h = _layer(b, w, config, i, h, mask, eps)
    D = config["hidden_size"]
    if pooling is None:
        b.output(h, "last_hidden_state", ["batch", "seq", D], meaning="hidden_states")
    else:
        h = b.add("meanpool", name="pool", x=h, mask=mask)
        if pooling.get("normalize"):
            h = b.add("l2normalize", name="normalize", x=h)
        b.output(h, "embedding", ["batch", D], meaning="embedding")
    return b.build()


def _embeddings(b: GraphBuilder, w: _Weights, config: dict[str, Any], ids: str,
                eps: float) -> str:
    """LN(word[ids] + (position[t] + token_type[0])) -> [B, T, D]."""
    D, P = config["hidden_size"], config["max_position_embeddings"]
    word = w.get("embeddings.word_embeddings.weight", (config["vocab_size"], D))
    pos = w.get("embeddings.position_embeddings.weight", (P, D))
    types = w.get("embeddings.token_type_embeddings.weight",
                  (config.get("type_vocab_size", 2), D))
    # Sentence encoders feed token_type_ids = 0 everywhere, so the token-type embedding is
    # one constant row: folded into the position table (one add and one gather fewer).
    pos = pos + types[0]
    h = b.add("add", name="embed.sum",
              a=b.add("embedding", name="embed.tokens", ids=ids,
                      weight=b.weight("embed.tokens.weight", word)),
              b=b.add("embedding", name="embed.positions",
                      ids=b.add("positions", name="embed.position_ids", ids=ids),
                      weight=b.weight("embed.positions.weight", pos)))
    return _layernorm(b, w, "embed.ln", "embeddings.LayerNorm", h, D, eps)


def _layer(b: GraphBuilder, w: _Weights, config: dict[str, Any], i: int, h: str, mask: str,
           eps: float) -> str:
    """One post-LN encoder block: h[B, T, D] -> [B, T, D]."""
    D, F = config["hidden_size"], config["intermediate_size"]
    p = f"layer.{i}"
    lin = lambda suffix, x, n_in, n_out: _linear(b, w, i, suffix, x, n_in, n_out)  # noqa: E731
    q, k, v = (lin(f"attn.{c}", h, D, D) for c in "qkv")
    a = b.add("attention", name=f"{p}.attn", q=q, k=k, v=v, mask=mask,
              attrs={"num_heads": config["num_attention_heads"]})
    h = b.add("add", name=f"{p}.attn.residual", a=h, b=lin("attn.out", a, D, D))
    h = _layernorm(b, w, f"{p}.attn.ln", _hf(i, "attn.ln"), h, D, eps)
    f = b.add("gelu", name=f"{p}.ffn.act", x=lin("ffn.up", h, D, F),
              attrs={"approximate": "none"})
    h = b.add("add", name=f"{p}.ffn.residual", a=h, b=lin("ffn.down", f, F, D))
    return _layernorm(b, w, f"{p}.ffn.ln", _hf(i, "ffn.ln"), h, D, eps)


def _hf(i: int, suffix: str) -> str:
    return f"encoder.layer.{i}.{_LAYER[suffix]}"


def _linear(b: GraphBuilder, w: _Weights, i: int, suffix: str, x: str, n_in: int,
            n_out: int) -> str:
    """HF Linear stores weight[out, in], as optcli's linear does: copied as is."""
    node, hf = f"layer.{i}.{suffix}", _hf(i, suffix)
    return b.add("linear", name=node, x=x,
                 weight=b.weight(f"{node}.weight", w.get(f"{hf}.weight", (n_out, n_in))),
                 bias=b.weight(f"{node}.bias", w.get(f"{hf}.bias", (n_out,))))


def _layernorm(b: GraphBuilder, w: _Weights, node: str, hf: str, x: str, D: int,
               eps: float) -> str:
    return b.add("layernorm", name=node, x=x, attrs={"eps": eps},
                 weight=b.weight(f"{node}.weight", w.get(f"{hf}.weight", (D,))),
                 bias=b.weight(f"{node}.bias", w.get(f"{hf}.bias", (D,))))
