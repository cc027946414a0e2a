"""GGML dequantizers, bit for bit against the `gguf` package's NumPy reference.

Types the package can quantize are round-tripped from random floats; the K-quants (which it
only dequantizes) are random bytes with finite f16 scales written where each layout keeps them.
"""

from __future__ import annotations

import numpy as np
import pytest

gguf = pytest.importorskip("gguf")
from gguf.quants import dequantize as ref_dequantize  # noqa: E402
from gguf.quants import quantize as ref_quantize  # noqa: E402

from optcli.interop.gguf_quants import BY_CODE, TYPES, UNSUPPORTED_NAMES, dequantize  # noqa: E402

QUANTIZABLE = ["F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1"]
# K-quant type -> byte offsets of its f16 fields (d, dmin) inside one block
K_SCALES = {"Q2_K": (80, 82), "Q3_K": (108,), "Q4_K": (0, 2), "Q5_K": (0, 2), "Q6_K": (208,)}


def _bits_equal(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and np.array_equal(a.view(np.uint32), b.view(np.uint32))


def test_table_matches_ggml():
    for qt in TYPES.values():
        ggml = gguf.GGMLQuantizationType[qt.name]
        assert qt.code == ggml.value
        assert (qt.block_size, qt.type_size) == gguf.GGML_QUANT_SIZES[ggml]
    for code, name in UNSUPPORTED_NAMES.items():
        assert gguf.GGMLQuantizationType(code).name == name and code not in BY_CODE


@pytest.mark.parametrize("name", QUANTIZABLE)
def test_quantized_round_trip_bit_exact(name):
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((8, 512)) * rng.uniform(0.01, 3, (8, 1))).astype(np.float32)
    x[0, :64] = 0.0                                     # an all-zero block: d = 0
    x[1, :32] = 5.0                                     # a constant block
    qtype = gguf.GGMLQuantizationType[name]
    raw = ref_quantize(x, qtype).reshape(-1).view(np.uint8)
    ours = dequantize(raw, TYPES[name]).reshape(x.shape)
    assert _bits_equal(ours, ref_dequantize(raw, qtype).reshape(x.shape))


def _random_k_blocks(name: str, n: int, rng: np.random.Generator) -> np.ndarray:
    qt = TYPES[name]
    raw = rng.integers(0, 256, (n, qt.type_size), dtype=np.uint8)
    for off in K_SCALES[name]:
        scale = rng.uniform(-0.05, 0.05, n).astype(np.float16)      # finite, either sign
        raw[:, off:off + 2] = scale.view(np.uint8).reshape(n, 2)
    return raw


@pytest.mark.parametrize("name", sorted(K_SCALES))
def test_k_quants_bit_exact(name):
    raw = _random_k_blocks(name, 300, np.random.default_rng(1)).reshape(-1)
    qtype = gguf.GGMLQuantizationType[name]
    ours = dequantize(raw, TYPES[name])
    assert _bits_equal(ours, ref_dequantize(raw, qtype).reshape(-1))


def test_chunked_decoding_matches_one_shot(monkeypatch):
    from optcli.interop import gguf_quants
    raw = _random_k_blocks("Q6_K", 50, np.random.default_rng(2)).reshape(-1)
    whole = dequantize(raw, TYPES["Q6_K"])
    monkeypatch.setattr(gguf_quants, "CHUNK_BLOCKS", 7)
    assert _bits_equal(dequantize(raw, TYPES["Q6_K"]), whole)
