"""SmolLM2-135M-Instruct from its real Q4_1 GGUF (skipped unless scripts/fetch_real_models.py
has fetched it): shapes, tokenizer, greedy text, and perplexity against transformers loading
the same GGUF. The full 512-token comparison is benchmarks/real_models_smollm2.py.

transformers' own GGUF loader needs ~35 s (most of it parsing the header in Python), so the
reference model is loaded once per module.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from optcli.interop.gguf_import import import_gguf
from optcli.text.generate import greedy
from optcli.text.perplexity import perplexity
from optcli.text.tokenizer import load_tokenizer

GGUF = Path(__file__).resolve().parents[2] / "real_models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
TEXT = Path("/usr/share/common-licenses/GPL-3")
pytestmark = pytest.mark.skipif(not GGUF.exists(), reason="real model not fetched "
                                "(python scripts/fetch_real_models.py --only smollm2)")


@pytest.fixture(scope="module")
def model():
    return import_gguf(GGUF)


@pytest.fixture(scope="module")
def tok(model):
    pytest.importorskip("tokenizers")
    return load_tokenizer(model)


@pytest.fixture(scope="module")
def reference():
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("accelerate")              # transformers' GGUF loading requires it
    m = transformers.AutoModelForCausalLM.from_pretrained(GGUF.parent, gguf_file=GGUF.name,
                                                          dtype=torch.float32)
    return m.eval()


def test_import_shapes_and_params(model):
    assert sum(t.size for t in model.tensors.values()) == 134_515_008
    assert model.tensors["model.embed_tokens.weight"].shape == (49152, 576)
    assert model.tensors["model.layers.29.self_attn.k_proj.weight"].shape == (192, 576)
    assert model.tensors["model.layers.0.mlp.down_proj.weight"].shape == (576, 1536)
    assert "lm_head.weight" not in model.tensors                        # tied
    assert model.graph.node("lm_head").inputs["weight"] == "model.embed_tokens.weight"
    assert model.provenance["quantization"] == {"Q8_0": 1, "F32": 61, "Q4_1": 210}
    attn = model.graph.node("layers.0.attn").attrs
    assert (attn["num_heads"], attn["num_kv_heads"], attn["rope_base"]) == (9, 3, 100000.0)


def test_tokenizer_matches_transformers_and_llama_cpp_digits(tok):
    """transformers' GGUF tokenizer converter ignores `tokenizer.ggml.pre` and so does not
    split digits one by one as llama.cpp's "smollm" pre-tokenizer (and SmolLM2's own
    tokenizer.json) do: compare with it on digit-free text, check the digits apart."""
    transformers = pytest.importorskip("transformers")
    ref = transformers.AutoTokenizer.from_pretrained(GGUF.parent, gguf_file=GGUF.name)
    text = re.sub(r"[0-9]", "", TEXT.read_text()[:4000]) + " The capital of France is"
    assert tok.encode(text) == ref(text, add_special_tokens=False)["input_ids"]
    assert [tok.decode([i]) for i in tok.encode("\n\n  2025.")] == ["\n\n  ", "2", "0", "2",
                                                                   "5", "."]


def test_greedy_says_paris(model, tok):
    new = greedy(model, tok.encode("The capital of France is"), max_new_tokens=2,
                 eos_id=tok.eos_id)
    assert tok.decode(new).startswith(" Paris")


def test_perplexity_within_one_percent_of_transformers(model, tok, reference):
    import torch
    ids = np.array(tok.encode(TEXT.read_text())[:128])
    ours = perplexity(model, ids, window=128, stride=128)
    with torch.no_grad():
        logits = reference(torch.from_numpy(ids[None])).logits[0].double()
    nll = torch.nn.functional.cross_entropy(logits[:-1], torch.from_numpy(ids[1:]))
    theirs = float(torch.exp(nll))
    assert ours["tokens"] == 127
    assert abs(ours["perplexity"] / theirs - 1) < 0.01, (ours["perplexity"], theirs)
