"""Import a LLaMA-architecture GGUF file (llama.cpp's format) as an optcli language model.

GGUF names and metadata (ggml `docs/gguf.md`, llama.cpp `convert_hf_to_gguf.py`) are mapped
to the Hugging Face names and config that `interop.llama.from_hf_tensors` takes:

    token_embd            -> model.embed_tokens          output_norm -> model.norm
    blk.N.attn_q/k/v      -> model.layers.N.self_attn.{q,k,v}_proj
    blk.N.attn_output     -> ...self_attn.o_proj          blk.N.attn_norm -> input_layernorm
    blk.N.ffn_gate/up/down -> ...mlp.{gate,up,down}_proj  blk.N.ffn_norm -> post_attention_layernorm
    output                -> lm_head (absent: tied to token_embd)

Every tensor is dequantized to float32, one at a time, exactly (see `gguf_quants`): the
weights keep the values of the GGUF quantization grid, they are not "restored" to the original
floats. convert_hf_to_gguf permutes the rows of q and k within each head so that llama.cpp's
rotary embedding, which rotates ADJACENT pairs (2i, 2i + 1), sees HF's (i, i + Dh/2) pairs.
Instead of undoing that permutation we run the attention op with rope="interleaved": q.k is
invariant to the same permutation of both, and v is not permuted, so the outputs are the same.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from optcli.errors import ModelFormatError
from optcli.graph import Model
from optcli.interop.gguf import GGUFFile, read_gguf
from optcli.interop.gguf_tokenizer import tokenizer_from_gguf
from optcli.interop.llama import from_hf_tensors

SUPPORTED_ARCHS = ("llama",)
_GLOBAL_NAMES = {"token_embd.weight": "model.embed_tokens.weight",
                 "output_norm.weight": "model.norm.weight", "output.weight": "lm_head.weight"}
_BLOCK_NAMES = {"attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj",
                "attn_v": "self_attn.v_proj", "attn_output": "self_attn.o_proj",
                "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj",
                "ffn_down": "mlp.down_proj", "attn_norm": "input_layernorm",
                "ffn_norm": "post_attention_layernorm"}
_BLOCK_RE = re.compile(r"blk\.(\d+)\.(\w+)\.(weight|bias)")


def hf_name(gguf_name: str) -> str | None:
    """The HF tensor name for a GGUF tensor name, or None when it has no counterpart."""
    if gguf_name in _GLOBAL_NAMES:
        return _GLOBAL_NAMES[gguf_name]
    m = _BLOCK_RE.fullmatch(gguf_name)
    if m and m.group(2) in _BLOCK_NAMES:
        return f"model.layers.{m.group(1)}.{_BLOCK_NAMES[m.group(2)]}.{m.group(3)}"
    return None


def import_gguf(path: Path) -> Model:
    """A `language_model` Model from the LLaMA GGUF file at `path`, tokenizer included."""
    f = read_gguf(path)
    arch = f.metadata.get("general.architecture")
    if arch not in SUPPORTED_ARCHS:
        raise ModelFormatError(f"{path}: general.architecture {arch!r} is not supported "
                               f"(supported: {', '.join(SUPPORTED_ARCHS)})")
    config = hf_config(f)
    tensors = _hf_tensors(f)
    name = f.metadata.get("general.name") or Path(path).stem
    try:
        model = from_hf_tensors(config, tensors, name=str(name), rope="interleaved")
    except ModelFormatError as e:                 # name the file, not just the model
        raise ModelFormatError(f"{path}: {e}") from None
    tokenizer, note = tokenizer_from_gguf(f.metadata)
    provenance = {"source": str(path), "format": "gguf", "gguf_version": f.version,
                  "architecture": arch,
                  "quantization": dict(Counter(t.type_name for t in f.tensors.values())),
                  "tokenizer": note}
    extra = {"tokenizer": tokenizer} if tokenizer else {}
    return model.replace(provenance=provenance, extra=extra)


def _meta(f: GGUFFile, key: str, default: Any = None, kind: type = int) -> Any:
    """Metadata `key` checked to be of `kind` (a missing key without default is an error)."""
    v = f.metadata.get(key, default)
    if v is None:
        raise ModelFormatError(f"{f.path}: missing metadata key '{key}'")
    if kind is float and isinstance(v, int) and not isinstance(v, bool):
        v = float(v)
    if not isinstance(v, kind) or isinstance(v, bool) or not v > 0:       # also rejects NaN
        raise ModelFormatError(f"{f.path}: metadata '{key}' is {v!r}, expected a positive "
                               f"{kind.__name__}")
    return v


def hf_config(f: GGUFFile) -> dict[str, Any]:
    """The HF LlamaConfig keys from a llama GGUF's metadata."""
    a = f.metadata["general.architecture"]
    heads = _meta(f, f"{a}.attention.head_count")
    d = _meta(f, f"{a}.embedding_length")
    head_dim = _meta(f, f"{a}.attention.key_length", d // heads)
    rot = _meta(f, f"{a}.rope.dimension_count", head_dim)
    if rot != head_dim:
        raise ModelFormatError(f"{f.path}: partial rotary ({a}.rope.dimension_count {rot} != "
                               f"head dim {head_dim}) is not supported")
    scaling = f.metadata.get(f"{a}.rope.scaling.type", "none")
    if scaling not in ("none", ""):
        raise ModelFormatError(f"{f.path}: {a}.rope.scaling.type {scaling!r} is not supported")
    if "token_embd.weight" not in f.tensors:
        raise ModelFormatError(f"{f.path}: missing tensor 'token_embd.weight'")
    vocab = f.tensors["token_embd.weight"].shape[0]
    return {"model_type": "llama", "hidden_size": d, "num_attention_heads": heads,
            "intermediate_size": _meta(f, f"{a}.feed_forward_length"),
            "num_key_value_heads": _meta(f, f"{a}.attention.head_count_kv", heads),
            "num_hidden_layers": _meta(f, f"{a}.block_count"), "head_dim": head_dim,
            "rms_norm_eps": _meta(f, f"{a}.attention.layer_norm_rms_epsilon", kind=float),
            "rope_theta": _meta(f, f"{a}.rope.freq_base", 10000.0, kind=float),
            "max_position_embeddings": _meta(f, f"{a}.context_length", 2048),
            "vocab_size": _meta(f, f"{a}.vocab_size", vocab),
            "tie_word_embeddings": "output.weight" not in f.tensors}


def _hf_tensors(f: GGUFFile) -> dict[str, np.ndarray]:
    """HF name -> float32 array, dequantized tensor by tensor; unknown GGUF tensors are errors."""
    out = {}
    for name in f.tensors:
        key = hf_name(name)
        if key is None:
            if name == "rope_freqs.weight":
                raise ModelFormatError(f"{f.path}: tensor 'rope_freqs.weight' (rope scaling "
                                       "factors) is not supported")
            raise ModelFormatError(f"{f.path}: tensor '{name}' has no place in a LLaMA graph")
        out[key] = f.tensor(name)
    return out
