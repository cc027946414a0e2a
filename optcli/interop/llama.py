"""LLaMA-family decoders (LLaMA 2/3, SmolLM, Mistral-style GQA) as optcli graphs.

Architecture: Touvron et al. 2023, "LLaMA: Open and Efficient Foundation Language Models":
pre-norm blocks with RMSNorm (Zhang & Sennrich 2019), rotary positions (Su et al. 2021,
RoFormer), grouped-query attention (Ainslie et al. 2023) and a SwiGLU MLP (Shazeer 2020).
Tensor names and config keys are Hugging Face `LlamaForCausalLM`'s:

    x = embed(ids)                                            # [B, T, D]
    per block i:
        h = rmsnorm(x) ; q, k, v = h Wq^T, h Wk^T, h Wv^T     # [B, T, H*Dh], [B, T, KV*Dh]
        x = x + attention(q, k, v; causal, rope) Wo^T
        h = rmsnorm(x) ; x = x + (silu(h Wg^T) * h Wu^T) Wd^T # FFN width F
    logits = rmsnorm(x) Wlm^T                                 # [B, T, vocab]

`rope="half"` is HF's rotate_half pairing (i, i + Dh/2); GGUF files store q/k rows permuted
for llama.cpp's adjacent-pair rotation, which is `rope="interleaved"` on the same weights.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from optcli.builder import GraphBuilder
from optcli.errors import ModelFormatError
from optcli.graph import Model

REQUIRED_CONFIG = ("hidden_size", "intermediate_size", "num_attention_heads",
                   "num_hidden_layers", "vocab_size")
IGNORED_TENSORS = ("rotary_emb.inv_freq",)       # buffers some checkpoints carry


def _dims(config: dict, name: str) -> dict[str, Any]:
    """Sizes and numerics from an HF config, with the LLaMA defaults; errors name the key."""
    for key in REQUIRED_CONFIG:
        if not isinstance(config.get(key), int) or config[key] <= 0:
            raise ModelFormatError(f"{name}: config key '{key}' missing or not a positive "
                                   f"integer (got {config.get(key)!r})")
    scaling = config.get("rope_scaling")
    if scaling and scaling.get("rope_type", scaling.get("type")) not in (None, "default"):
        raise ModelFormatError(f"{name}: config key 'rope_scaling' {scaling} is not supported")
    d, h = config["hidden_size"], config["num_attention_heads"]
    kv = config.get("num_key_value_heads") or h
    if h % kv:
        raise ModelFormatError(f"{name}: config num_attention_heads {h} is not a multiple of "
                               f"num_key_value_heads {kv}")
    return {"d": d, "f": config["intermediate_size"], "h": h, "kv": kv,
            "dh": config.get("head_dim") or d // h, "layers": config["num_hidden_layers"],
            "vocab": config["vocab_size"], "eps": float(config.get("rms_norm_eps", 1e-6)),
            "base": float(config.get("rope_theta", 10000.0)),
            "tied": bool(config.get("tie_word_embeddings", False))}


def _expected(dm: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """HF tensor name -> expected shape (weights are [out, in])."""
    d, f, qd, kvd = dm["d"], dm["f"], dm["h"] * dm["dh"], dm["kv"] * dm["dh"]
    shapes = {"model.embed_tokens.weight": (dm["vocab"], d), "model.norm.weight": (d,)}
    if not dm["tied"]:
        shapes["lm_head.weight"] = (dm["vocab"], d)
    for i in range(dm["layers"]):
        p = f"model.layers.{i}"
        shapes.update({
            f"{p}.self_attn.q_proj.weight": (qd, d), f"{p}.self_attn.k_proj.weight": (kvd, d),
            f"{p}.self_attn.v_proj.weight": (kvd, d), f"{p}.self_attn.o_proj.weight": (d, qd),
            f"{p}.mlp.gate_proj.weight": (f, d), f"{p}.mlp.up_proj.weight": (f, d),
            f"{p}.mlp.down_proj.weight": (d, f),
            f"{p}.input_layernorm.weight": (d,), f"{p}.post_attention_layernorm.weight": (d,)})
    return shapes


def _check_tensors(tensors: dict[str, np.ndarray], shapes: dict[str, tuple[int, ...]],
                   name: str) -> set[str]:
    """Every expected tensor present with its shape; returns the names of optional biases."""
    for key, shape in shapes.items():
        if key not in tensors:
            raise ModelFormatError(f"{name}: missing tensor '{key}' (shape {list(shape)})")
        if tuple(tensors[key].shape) != shape:
            raise ModelFormatError(f"{name}: tensor '{key}' has shape {list(tensors[key].shape)}"
                                   f", the config implies {list(shape)}")
    biases = {k for k in tensors if k.endswith("_proj.bias")
              and k[:-len("bias")] + "weight" in shapes}
    extra = sorted(k for k in set(tensors) - set(shapes) - biases
                   if not k.endswith(IGNORED_TENSORS))
    if extra:
        raise ModelFormatError(f"{name}: unexpected tensor(s) for a LLaMA decoder: "
                               f"{', '.join(extra[:5])}{' ...' if len(extra) > 5 else ''}")
    return biases


def from_hf_tensors(config: dict, tensors: dict[str, np.ndarray], name: str,
                    rope: str = "half") -> Model:
    """A `language_model` graph from HF-named LLaMA tensors and an HF config dict."""
    if rope not in ("half", "interleaved"):
        raise ValueError(f"rope must be 'half' or 'interleaved', got {rope!r}")
    dm = _dims(config, name)
    biases = _check_tensors(tensors, _expected(dm), name)
    b = _Builder(name, tensors, biases)
    x = b.g.add("embedding", name="embed", ids=b.g.input("ids", ["batch", "seq"], "int64",
                                                          "token_ids"),
                weight=b.w("model.embed_tokens.weight"))
    for i in range(dm["layers"]):
        x = _block(b, x, i, dm, rope)
    x = b.g.add("rmsnorm", name="norm", x=x, weight=b.w("model.norm.weight"),
                attrs={"eps": dm["eps"]})
    head = "model.embed_tokens.weight" if dm["tied"] else "lm_head.weight"
    x = b.g.add("linear", name="lm_head", x=x, weight=b.w(head))
    b.g.output(x, "logits", ["batch", "seq", dm["vocab"]], meaning="logits")
    return b.g.build()


class _Builder:
    """A GraphBuilder that adds each HF tensor (float32) the first time a node reads it."""

    def __init__(self, name: str, tensors: dict[str, np.ndarray], biases: set[str]):
        self.g = GraphBuilder(name, task={"kind": "language_model"})
        self.tensors, self.biases = tensors, biases

    def w(self, key: str) -> str:
        if key not in self.g.tensors:
            self.g.weight(key, np.asarray(self.tensors[key], np.float32))
        return key

    def linear(self, node: str, x: str, prefix: str) -> str:
        bias = self.w(f"{prefix}.bias") if f"{prefix}.bias" in self.biases else None
        return self.g.add("linear", name=node, x=x, weight=self.w(f"{prefix}.weight"), bias=bias)


def _block(b: _Builder, x: str, i: int, dm: dict[str, Any], rope: str) -> str:
    """One pre-norm decoder block: x[B, T, D] -> x[B, T, D]."""
    p, n, eps = f"model.layers.{i}", f"layers.{i}", {"eps": dm["eps"]}
    h = b.g.add("rmsnorm", name=f"{n}.attn_norm", x=x,
                weight=b.w(f"{p}.input_layernorm.weight"), attrs=eps)
    q, k, v = (b.linear(f"{n}.attn.{r}", h, f"{p}.self_attn.{r}_proj") for r in "qkv")
    a = b.g.add("attention", name=f"{n}.attn", q=q, k=k, v=v, attrs={
        "num_heads": dm["h"], "num_kv_heads": dm["kv"], "causal": True, "rope": rope,
        "rope_base": dm["base"]})
    a = b.linear(f"{n}.attn.o", a, f"{p}.self_attn.o_proj")
    x = b.g.add("add", name=f"{n}.attn_residual", a=x, b=a)
    h = b.g.add("rmsnorm", name=f"{n}.mlp_norm", x=x,
                weight=b.w(f"{p}.post_attention_layernorm.weight"), attrs=eps)
    gate = b.linear(f"{n}.mlp.gate", h, f"{p}.mlp.gate_proj")
    up = b.linear(f"{n}.mlp.up", h, f"{p}.mlp.up_proj")
    act = b.g.add("silu", name=f"{n}.mlp.act", x=gate)
    m = b.g.add("mul", name=f"{n}.mlp.mul", a=act, b=up)
    m = b.linear(f"{n}.mlp.down", m, f"{p}.mlp.down_proj")
    return b.g.add("add", name=f"{n}.mlp_residual", a=x, b=m)
