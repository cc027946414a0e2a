"""`from_hf_tensors`: the LLaMA graph against transformers' LlamaForCausalLM, and bad input."""

from __future__ import annotations

import numpy as np
import pytest

from optcli.errors import ModelFormatError
from optcli.interop.llama import from_hf_tensors
from optcli.runtime import Runtime

CONFIG = {"hidden_size": 32, "intermediate_size": 48, "num_attention_heads": 4,
          "num_key_value_heads": 2, "num_hidden_layers": 2, "rms_norm_eps": 1e-5,
          "rope_theta": 500.0, "vocab_size": 40, "tie_word_embeddings": False}


def hf_tensors(config: dict, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    d, f, v = config["hidden_size"], config["intermediate_size"], config["vocab_size"]
    kvd = config["num_key_value_heads"] * d // config["num_attention_heads"]

    def w(*shape):
        return (rng.standard_normal(shape) / np.sqrt(shape[-1])).astype(np.float32)

    t = {"model.embed_tokens.weight": w(v, d), "model.norm.weight": 1 + w(d) / 3}
    if not config["tie_word_embeddings"]:
        t["lm_head.weight"] = w(v, d)
    for i in range(config["num_hidden_layers"]):
        p = f"model.layers.{i}"
        t.update({f"{p}.self_attn.q_proj.weight": w(d, d), f"{p}.self_attn.k_proj.weight":
                  w(kvd, d), f"{p}.self_attn.v_proj.weight": w(kvd, d),
                  f"{p}.self_attn.o_proj.weight": w(d, d), f"{p}.mlp.gate_proj.weight": w(f, d),
                  f"{p}.mlp.up_proj.weight": w(f, d), f"{p}.mlp.down_proj.weight": w(d, f),
                  f"{p}.input_layernorm.weight": 1 + w(d) / 3,
                  f"{p}.post_attention_layernorm.weight": 1 + w(d) / 3})
    return t


@pytest.mark.parametrize("tied", [False, True])
def test_matches_transformers(tied):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    cfg = {**CONFIG, "tie_word_embeddings": tied}
    tensors = hf_tensors(cfg)
    ref = transformers.LlamaForCausalLM(transformers.LlamaConfig(**cfg)).eval()
    missing, unexpected = ref.load_state_dict({k: torch.from_numpy(v) for k, v in
                                               tensors.items()}, strict=False)
    assert not unexpected and set(missing) <= {"lm_head.weight"}
    ids = np.random.default_rng(1).integers(0, cfg["vocab_size"], (2, 9))
    with torch.no_grad():
        want = ref(torch.from_numpy(ids)).logits.numpy()
    model = from_hf_tensors(cfg, tensors, "tiny")
    got = Runtime(model).run({"ids": ids})["logits"]
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-4)
    assert ("lm_head.weight" in model.tensors) is not tied     # a tied head is stored once
    ref_got = Runtime(model, kernels="reference").run({"ids": ids})["logits"]
    np.testing.assert_allclose(ref_got, want, atol=1e-4, rtol=1e-4)


def test_graph_names_and_io():
    model = from_hf_tensors(CONFIG, hf_tensors(CONFIG), "tiny")
    names = [n.name for n in model.graph.nodes]
    for n in ("embed", "layers.0.attn.q", "layers.1.attn", "layers.1.mlp.down", "norm",
              "lm_head"):
        assert n in names
    (inp,), (out,) = model.graph.inputs, model.graph.outputs
    assert (inp.name, inp.dtype, inp.meaning) == ("ids", "int64", "token_ids")
    assert (out.name, out.shape) == ("logits", ("batch", "seq", 40))
    attn = model.graph.node("layers.0.attn").attrs
    assert attn == {"num_heads": 4, "num_kv_heads": 2, "causal": True, "rope": "half",
                    "rope_base": 500.0}


@pytest.mark.parametrize("change, message", [
    (lambda c, t: c.pop("hidden_size"), "config key 'hidden_size' missing"),
    (lambda c, t: c.update(num_key_value_heads=3), "not a multiple of num_key_value_heads"),
    (lambda c, t: c.update(rope_scaling={"rope_type": "llama3"}), "rope_scaling"),
    (lambda c, t: t.pop("model.layers.1.mlp.up_proj.weight"),
     "missing tensor 'model.layers.1.mlp.up_proj.weight'"),
    (lambda c, t: t.update({"model.layers.0.self_attn.k_proj.weight": np.zeros((32, 32))}),
     r"'model.layers.0.self_attn.k_proj.weight' has shape \[32, 32\], the config implies"),
    (lambda c, t: t.update({"model.layers.0.mlp.extra.weight": np.zeros(3)}),
     "unexpected tensor"),
])
def test_bad_input_names_key_or_tensor(change, message):
    cfg, tensors = dict(CONFIG), hf_tensors(CONFIG)
    change(cfg, tensors)
    with pytest.raises(ModelFormatError, match=message):
        from_hf_tensors(cfg, tensors, "tiny")


def test_biases_and_inv_freq_accepted():
    tensors = hf_tensors(CONFIG)
    tensors["model.layers.0.self_attn.q_proj.bias"] = np.ones(32, np.float32)
    tensors["model.layers.0.self_attn.rotary_emb.inv_freq"] = np.ones(4, np.float32)
    model = from_hf_tensors(CONFIG, tensors, "tiny")
    assert model.graph.node("layers.0.attn.q").inputs["bias"] == \
        "model.layers.0.self_attn.q_proj.bias"
    assert "model.layers.0.self_attn.rotary_emb.inv_freq" not in model.tensors
