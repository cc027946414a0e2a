"""Hugging Face BERT import: a tiny random BERT checked against a NumPy forward written here
from the HF formulas (and transformers' BertModel when installed); bad checkpoints; and, when
real_models/minilm is fetched, all-MiniLM-L6-v2 against transformers and onnxruntime."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from optcli.errors import InputError, ModelFormatError
from optcli.interop.hf import import_hf
from optcli.interop.safetensors import write_safetensors
from optcli.runtime import Runtime

CONFIG = {"model_type": "bert", "vocab_size": 50, "hidden_size": 32, "num_hidden_layers": 2,
          "num_attention_heads": 4, "intermediate_size": 64, "max_position_embeddings": 16,
          "type_vocab_size": 2, "hidden_act": "gelu", "layer_norm_eps": 1e-12}
MODULES = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
           {"idx": 1, "name": "1", "path": "1_Pooling",
            "type": "sentence_transformers.models.Pooling"},
           {"idx": 2, "name": "2", "path": "2_Normalize",
            "type": "sentence_transformers.models.Normalize"}]


def bert_tensors(seed: int = 0, prefix: str = "") -> dict[str, np.ndarray]:
    """Random weights under HF BertModel names (plus the unused pooler and position_ids)."""
    rng = np.random.default_rng(seed)
    r = lambda *s: (0.2 * rng.standard_normal(s)).astype(np.float32)  # noqa: E731
    D, F = CONFIG["hidden_size"], CONFIG["intermediate_size"]
    t = {"embeddings.word_embeddings.weight": r(CONFIG["vocab_size"], D),
         "embeddings.position_embeddings.weight": r(CONFIG["max_position_embeddings"], D),
         "embeddings.token_type_embeddings.weight": r(2, D),
         "embeddings.LayerNorm.weight": 1 + r(D), "embeddings.LayerNorm.bias": r(D),
         "embeddings.position_ids": np.arange(16, dtype=np.int64)[None],
         "pooler.dense.weight": r(D, D), "pooler.dense.bias": r(D)}
    for i in range(CONFIG["num_hidden_layers"]):
        p = f"encoder.layer.{i}."
        for name, (o, n) in {"attention.self.query": (D, D), "attention.self.key": (D, D),
                             "attention.self.value": (D, D), "attention.output.dense": (D, D),
                             "intermediate.dense": (F, D), "output.dense": (D, F)}.items():
            t[p + name + ".weight"], t[p + name + ".bias"] = r(o, n), r(o)
        for ln in ("attention.output.LayerNorm", "output.LayerNorm"):
            t[p + ln + ".weight"], t[p + ln + ".bias"] = 1 + r(D), r(D)
    return {prefix + k: v for k, v in t.items()}


def write_hf_dir(folder: Path, tensors=None, config=None, pooling: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config or CONFIG))
    write_safetensors(folder / "model.safetensors", bert_tensors() if tensors is None else tensors)
    if pooling:
        (folder / "modules.json").write_text(json.dumps(MODULES))
        (folder / "1_Pooling").mkdir(exist_ok=True)
        (folder / "1_Pooling" / "config.json").write_text(json.dumps(
            {"word_embedding_dimension": 32, "pooling_mode_mean_tokens": True,
             "pooling_mode_cls_token": False}))
    return folder


def numpy_bert(t: dict[str, np.ndarray], ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """HF BertModel's last_hidden_state [B, T, D] in float64, from the formulas."""
    D, H = CONFIG["hidden_size"], CONFIG["num_attention_heads"]
    ln = lambda x, p: ((x - x.mean(-1, keepdims=True))  # noqa: E731
                       / np.sqrt(x.var(-1, keepdims=True) + 1e-12) * t[p + ".weight"]
                       + t[p + ".bias"])
    lin = lambda x, p: x @ t[p + ".weight"].T.astype(np.float64) + t[p + ".bias"]  # noqa: E731
    erf = np.vectorize(math.erf)
    T = ids.shape[1]
    x = (t["embeddings.word_embeddings.weight"][ids] + t["embeddings.position_embeddings.weight"]
         [:T] + t["embeddings.token_type_embeddings.weight"][0]).astype(np.float64)
    x = ln(x, "embeddings.LayerNorm")
    additive = (1.0 - mask)[:, None, None, :] * -1e30          # [B, 1, 1, T]
    heads = lambda y: y.reshape(*y.shape[:2], H, D // H).transpose(0, 2, 1, 3)  # noqa: E731
    for i in range(CONFIG["num_hidden_layers"]):
        p = f"encoder.layer.{i}."
        q, k, v = (heads(lin(x, p + "attention.self." + n)) for n in ("query", "key", "value"))
        s = q @ k.transpose(0, 1, 3, 2) / math.sqrt(D // H) + additive
        a = np.exp(s - s.max(-1, keepdims=True))
        a = (a / a.sum(-1, keepdims=True)) @ v                   # [B, H, T, Dh]
        a = a.transpose(0, 2, 1, 3).reshape(x.shape)
        x = ln(x + lin(a, p + "attention.output.dense"), p + "attention.output.LayerNorm")
        f = lin(x, p + "intermediate.dense")
        f = f * 0.5 * (1 + erf(f / math.sqrt(2)))
        x = ln(x + lin(f, p + "output.dense"), p + "output.LayerNorm")
    return x


def sentence_embedding(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    pooled = (hidden * mask[:, :, None]).sum(1) / mask.sum(1, keepdims=True)
    return pooled / np.linalg.norm(pooled, axis=1, keepdims=True)


def _batch():
    rng = np.random.default_rng(1)
    ids = rng.integers(0, CONFIG["vocab_size"], (3, 7)).astype(np.int64)
    mask = np.ones((3, 7), np.float32)
    mask[1, 4:], mask[2, 2:] = 0, 0                               # right padding
    return ids, mask


def test_tiny_bert_matches_the_hf_formulas(tmp_path):
    model = import_hf(write_hf_dir(tmp_path / "tiny"))
    ids, mask = _batch()
    for kernels in ("reference", "fast"):
        y = Runtime(model, kernels=kernels).run({"input_ids": ids, "attention_mask": mask})
        want = sentence_embedding(numpy_bert(bert_tensors(), ids, mask), mask)
        np.testing.assert_allclose(y["embedding"], want, atol=2e-5)
    assert model.task == {"kind": "embedding"}
    assert model.extra["pooling"] == {"mode": "mean", "normalize": True}
    assert model.provenance["format"] == "safetensors" and len(model.provenance["sha256"]) == 64
    assert "layer.1.ffn.up" in {n.name for n in model.graph.nodes}
    assert len(model.tensors) == 4 + 16 * CONFIG["num_hidden_layers"]


def test_tiny_bert_matches_transformers(tmp_path):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    folder = write_hf_dir(tmp_path / "tiny", pooling=False)
    model = import_hf(folder)
    ids, mask = _batch()
    got = Runtime(model).run({"input_ids": ids, "attention_mask": mask})["last_hidden_state"]
    hf = transformers.BertModel.from_pretrained(str(folder), attn_implementation="eager").eval()
    with torch.no_grad():
        want = hf(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask))
    keep = mask.astype(bool)                                       # pad rows are not compared
    np.testing.assert_allclose(got[keep], want.last_hidden_state.numpy()[keep], atol=1e-4)


def test_bert_prefix_and_a_weights_file_path(tmp_path):
    folder = write_hf_dir(tmp_path / "p", tensors=bert_tensors(prefix="bert."), pooling=False)
    model = import_hf(folder / "model.safetensors")
    ids, mask = _batch()
    y = Runtime(model).run({"input_ids": ids, "attention_mask": mask})["last_hidden_state"]
    np.testing.assert_allclose(y[0], numpy_bert(bert_tensors(), ids, mask)[0], atol=2e-5)


def test_missing_tensor_names_file_and_tensor(tmp_path):
    t = bert_tensors()
    del t["encoder.layer.1.output.dense.weight"]
    folder = write_hf_dir(tmp_path / "m", tensors=t)
    with pytest.raises(ModelFormatError, match=r"model\.safetensors: tensor "
                       r"'encoder\.layer\.1\.output\.dense\.weight': missing"):
        import_hf(folder)


def test_wrong_shape_names_both_shapes(tmp_path):
    t = bert_tensors()
    t["encoder.layer.0.intermediate.dense.weight"] = np.zeros((64, 31), np.float32)
    with pytest.raises(ModelFormatError, match=r"shape \[64, 31\] does not match the "
                       r"config's \[64, 32\]"):
        import_hf(write_hf_dir(tmp_path / "s", tensors=t))


def test_unknown_model_type_lists_supported(tmp_path):
    folder = write_hf_dir(tmp_path / "u", config={**CONFIG, "model_type": "gpt2"})
    with pytest.raises(InputError, match="'gpt2' is not supported.*bert, llama"):
        import_hf(folder)


@pytest.mark.parametrize("config, words", [
    ({**CONFIG, "hidden_act": "relu"}, "hidden_act 'relu' not supported"),
    ({**CONFIG, "hidden_size": "32"}, "'hidden_size' must be a positive integer"),
])
def test_unsupported_configs(tmp_path, config, words):
    with pytest.raises(InputError, match=words):
        import_hf(write_hf_dir(tmp_path / "c", config=config))


def test_missing_config_and_weights(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="config.json: not found"):
        import_hf(tmp_path / "empty")
    (tmp_path / "empty" / "config.json").write_text(json.dumps(CONFIG))
    with pytest.raises(InputError, match="no model.safetensors"):
        import_hf(tmp_path / "empty")
