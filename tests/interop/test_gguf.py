"""GGUF reader and LLaMA importer on tiny GGUF files written here with the `gguf` package.

The tiny LLaMA (2 blocks, d 32, 4 query / 2 kv heads, FFN 64) is written the way
convert_hf_to_gguf does it: q/k rows permuted for llama.cpp's adjacent-pair RoPE, shapes
listed (in, out), every weight role in a different ggml type. Its optcli forward must equal
`from_hf_tensors` on the same (dequantized, un-permuted) weights in HF layout with rope="half":
that checks the claim that rope="interleaved" on the permuted weights is the same model.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

gguf = pytest.importorskip("gguf")
from gguf.quants import dequantize as ref_dequantize  # noqa: E402
from gguf.quants import quantize as ref_quantize  # noqa: E402

from optcli.errors import InputError, ModelFormatError  # noqa: E402
from optcli.interop.gguf import read_gguf  # noqa: E402
from optcli.interop.gguf_import import hf_name, import_gguf  # noqa: E402
from optcli.interop.llama import from_hf_tensors  # noqa: E402
from optcli.runtime import Runtime  # noqa: E402
from optcli.text.tokenizer import load_tokenizer  # noqa: E402

D, F, H, KV, LAYERS = 32, 64, 4, 2, 2
Q = gguf.GGMLQuantizationType
TYPES = {"attn_q": Q.Q8_0, "attn_k": Q.Q4_0, "attn_v": Q.Q4_1, "attn_output": Q.Q5_0,
         "ffn_gate": Q.Q5_1, "ffn_up": Q.F16, "ffn_down": Q.BF16, "token_embd": Q.Q8_0}
SHAPES = {"attn_q": (D, D), "attn_k": (KV * D // H, D), "attn_v": (KV * D // H, D),
          "attn_output": (D, D), "ffn_gate": (F, D), "ffn_up": (F, D), "ffn_down": (D, F)}


def _bytes_to_unicode() -> list[str]:
    """GPT-2's byte -> printable character table (the byte-level BPE alphabet)."""
    keep = [*range(33, 127), *range(161, 173), *range(174, 256)]
    extra = iter(range(256, 512))
    return [chr(b) if b in keep else chr(next(extra)) for b in range(256)]


def _vocab() -> tuple[list[str], list[str]]:
    """257 single bytes + <|endoftext|> + 30 two-letter merges = 288 tokens (9 x 32)."""
    pairs = [(a, b) for a in "abcdef" for b in "ghijk"]
    return ["<|endoftext|>"] + _bytes_to_unicode() + [a + b for a, b in pairs] + ["Ġa"], \
        [f"{a} {b}" for a, b in pairs] + ["Ġ a"]


def _permute(w: np.ndarray, heads: int) -> np.ndarray:
    """convert_hf_to_gguf's q/k row permutation: HF pair (i, i + Dh/2) -> rows (2i, 2i + 1)."""
    return w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2) \
        .reshape(w.shape)


def _unpermute(w: np.ndarray, heads: int) -> np.ndarray:
    return w.reshape(heads, w.shape[0] // heads // 2, 2, *w.shape[1:]).swapaxes(1, 2) \
        .reshape(w.shape)


def _quantized(w: np.ndarray, qtype) -> tuple[np.ndarray, np.ndarray]:
    """(what GGUFWriter stores, its reference dequantization)."""
    if qtype == Q.F32:
        return w, w
    raw = w.astype(np.float16) if qtype == Q.F16 else ref_quantize(w, qtype)
    return raw, ref_dequantize(raw.view(np.uint8) if qtype == Q.F16 else raw, qtype) \
        .reshape(w.shape)


def write_tiny(path, seed=0, arch="llama", drop=(), extra=None, tied=True):
    """Write the tiny LLaMA to `path`; returns HF-layout reference tensors (dequantized)."""
    rng = np.random.default_rng(seed)
    tokens, merges = _vocab()
    w = gguf.GGUFWriter(str(path), arch)
    for add, v in [("block_count", LAYERS), ("context_length", 64), ("embedding_length", D),
                   ("feed_forward_length", F), ("head_count", H), ("head_count_kv", KV),
                   ("rope_freq_base", 1000.0), ("layer_norm_rms_eps", 1e-5),
                   ("tokenizer_model", "gpt2"), ("tokenizer_pre", "smollm"),
                   ("token_list", tokens), ("token_merges", merges),
                   ("token_types", [3] + [1] * (len(tokens) - 1)),
                   ("bos_token_id", 0), ("eos_token_id", 0)]:
        getattr(w, f"add_{add}")(v)
    ref = {}

    def put(name, value, qtype=Q.F32, heads=None):
        raw, deq = _quantized(value.astype(np.float32), qtype)
        if name not in drop:
            w.add_tensor(name, raw, raw_dtype=None if qtype in (Q.F32, Q.F16) else qtype)
        ref[hf_name(name)] = _unpermute(deq, heads) if heads else deq

    put("token_embd.weight", rng.standard_normal((len(tokens), D)), TYPES["token_embd"])
    for i in range(LAYERS):
        for role, shape in SHAPES.items():
            heads = {"attn_q": H, "attn_k": KV}.get(role)
            hf = rng.standard_normal(shape) / np.sqrt(shape[1])
            put(f"blk.{i}.{role}.weight", _permute(hf, heads) if heads else hf, TYPES[role],
                heads)
        for role in ("attn_norm", "ffn_norm"):
            put(f"blk.{i}.{role}.weight", 1 + 0.1 * rng.standard_normal(D))
    put("output_norm.weight", 1 + 0.1 * rng.standard_normal(D))
    if not tied:
        put("output.weight", rng.standard_normal((len(tokens), D)) / np.sqrt(D), Q.Q8_0)
    for name, (raw, qtype) in (extra or {}).items():
        w.add_tensor(name, raw, raw_dtype=qtype)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return ref


def _config(tied=True):
    return {"hidden_size": D, "intermediate_size": F, "num_attention_heads": H,
            "num_key_value_heads": KV, "num_hidden_layers": LAYERS, "rms_norm_eps": 1e-5,
            "rope_theta": 1000.0, "vocab_size": 288, "tie_word_embeddings": tied}


def _logits(model, ids):
    return Runtime(model).run({"ids": ids})["logits"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    path = tmp_path_factory.mktemp("gguf") / "tiny.gguf"
    return path, write_tiny(path)


IDS = np.random.default_rng(5).integers(0, 288, (2, 11))


@pytest.mark.parametrize("tied", [True, False])
def test_import_equals_hf_layout_with_half_rope(tmp_path, tied):
    path = tmp_path / "t.gguf"
    ref = write_tiny(path, seed=1, tied=tied)
    model = import_gguf(path)
    want = _logits(from_hf_tensors(_config(tied), ref, "ref", rope="half"), IDS)
    np.testing.assert_allclose(_logits(model, IDS), want, atol=2e-4, rtol=1e-4)
    assert ("lm_head.weight" in model.tensors) is not tied
    assert model.graph.node("layers.1.attn").attrs["rope"] == "interleaved"
    # the permutation matters: the same GGUF weights with HF's rope pairing are another model
    wrong = {k: model.tensors[k].decode() for k in model.tensors}
    wrong_logits = _logits(from_hf_tensors(_config(tied), wrong, "x", rope="half"), IDS)
    assert np.abs(wrong_logits - want).max() > 1e-2


def test_reader_matches_gguf_package(tiny):
    path, _ = tiny
    f, r = read_gguf(path), gguf.GGUFReader(path)
    assert f.version == 3 and f.metadata["llama.block_count"] == LAYERS
    assert f.metadata["tokenizer.ggml.merges"][-1] == "Ġ a"
    assert abs(f.metadata["llama.rope.freq_base"] - 1000.0) < 1e-9
    assert set(f.tensors) == {t.name for t in r.tensors}
    for t in r.tensors:
        info = f.tensors[t.name]
        assert info.shape == tuple(int(n) for n in reversed(t.shape))      # [out, in]
        assert info.type_name == t.tensor_type.name
        want = ref_dequantize(t.data, t.tensor_type).reshape(info.shape)
        assert np.array_equal(f.tensor(t.name).view(np.uint32), want.view(np.uint32))


def test_provenance_and_tokenizer(tiny):
    path, _ = tiny
    model = import_gguf(path)
    prov = model.provenance
    assert prov["format"] == "gguf" and prov["source"] == str(path)
    assert prov["quantization"] == {"F32": 5, "Q8_0": 3, "Q4_0": 2, "Q4_1": 2, "Q5_0": 2,
                                    "Q5_1": 2, "F16": 2, "BF16": 2}
    assert model.task == {"kind": "language_model"}
    pytest.importorskip("tokenizers")
    tok = load_tokenizer(model)
    ids = tok.encode("ag bh a<|endoftext|>")
    tokens, _ = _vocab()
    assert [tokens[i] for i in ids] == ["ag", "Ġ", "bh", "Ġa", "<|endoftext|>"]
    assert tok.decode(ids) == "ag bh a<|endoftext|>" and tok.eos_id == 0


def _cut_points(path) -> list[int]:
    f = read_gguf(path)
    end = max(t.offset + t.nbytes for t in f.tensors.values())
    start = min(t.offset for t in f.tensors.values())
    return [0, 3, 4, 7, 12, 23, 40, 200, 2000, start - 1, start + 5, end - 1]


def test_truncated_file_names_the_file(tiny, tmp_path):
    path, _ = tiny
    data = path.read_bytes()
    for cut in _cut_points(path):
        bad = tmp_path / f"cut{cut}.gguf"
        bad.write_bytes(data[:cut])
        with pytest.raises(ModelFormatError, match=re.escape(str(bad))):
            import_gguf(bad)


def test_corrupt_header_gives_one_clear_error(tiny, tmp_path):
    path, _ = tiny
    data = bytearray(path.read_bytes())
    header = min(t.offset for t in read_gguf(path).tensors.values())
    rng = np.random.default_rng(0)
    for trial in range(150):
        bad = bytearray(data)
        for pos in rng.integers(0, header, rng.integers(1, 4)):
            bad[pos] = int(rng.integers(0, 256))
        p = tmp_path / "bad.gguf"
        p.write_bytes(bad)
        try:
            import_gguf(p)
        except InputError as e:               # ModelFormatError, or GraphError from the build
            assert "\n" not in str(e)


@pytest.mark.parametrize("header, message", [
    (b"GGML" + bytes(20), "not a GGUF file"),
    (b"GGUF" + (1).to_bytes(4, "little") + bytes(16), "version 1 not supported"),
    (b"GGUF" + (3 << 24).to_bytes(4, "little") + bytes(16), "big-endian"),
])
def test_not_gguf(tmp_path, header, message):
    p = tmp_path / "x.gguf"
    p.write_bytes(header)
    with pytest.raises(ModelFormatError, match=message):
        read_gguf(p)


def test_unsupported_architecture(tmp_path):
    write_tiny(tmp_path / "g.gguf", arch="gpt2")
    with pytest.raises(ModelFormatError, match=r"g\.gguf: general.architecture 'gpt2'"):
        import_gguf(tmp_path / "g.gguf")


def test_unsupported_type_names_tensor_and_type(tmp_path):
    raw = np.zeros((4, 40), np.uint8)                          # 4 blocks of Q8_1: [4, 32]
    write_tiny(tmp_path / "q.gguf", extra={"odd.weight": (raw, Q.Q8_1)})
    with pytest.raises(ModelFormatError, match="tensor 'odd.weight': ggml type Q8_1"):
        import_gguf(tmp_path / "q.gguf")


def test_missing_and_unknown_tensors(tmp_path):
    write_tiny(tmp_path / "m.gguf", drop=("blk.1.ffn_up.weight",))
    with pytest.raises(ModelFormatError, match=r"m\.gguf: .*model.layers.1.mlp.up_proj"):
        import_gguf(tmp_path / "m.gguf")
    write_tiny(tmp_path / "u.gguf", extra={"blk.0.attn_q_norm.weight":
                                           (np.ones(8, np.float32), None)})
    with pytest.raises(ModelFormatError, match="'blk.0.attn_q_norm.weight' has no place"):
        import_gguf(tmp_path / "u.gguf")


def test_wrong_shape_names_tensor(tmp_path):
    write_tiny(tmp_path / "s.gguf", drop=("blk.0.attn_k.weight",),
               extra={"blk.0.attn_k.weight": (np.zeros((D, D), np.float32), None)})
    with pytest.raises(ModelFormatError, match=r"s\.gguf: .*k_proj.weight' has shape \[32, 32\]"):
        import_gguf(tmp_path / "s.gguf")
