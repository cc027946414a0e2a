"""Canonical Huffman coder: exact round trips on random and adversarial streams, prefix codes,
and clear errors on malformed coded data."""

import dataclasses

import numpy as np
import pytest

from optcli.coding import HuffmanCode, decode, empirical_entropy, encode
from optcli.coding.huffman import MAX_LEN, code_lengths, lanes
from optcli.errors import ModelFormatError

RNG = np.random.default_rng(0)

STREAMS = {
    "random_uint8": RNG.integers(0, 256, 50_000).astype(np.uint8),
    "skewed_uint8": np.minimum(RNG.geometric(0.4, 200_000), 255).astype(np.uint8),
    "one_symbol": np.full(5000, 7, np.uint8),
    "one_element": np.array([200], np.uint8),
    "all_distinct": RNG.permutation(256).astype(np.uint8),
    "empty": np.zeros(0, np.uint8),
    "empty_2d": np.zeros((0, 3), np.int8),
    "uint16_full_range": RNG.permutation(65536).astype(np.uint16),
    "uint16_sparse": (RNG.integers(0, 60, 30_000) * 1000).astype(np.uint16),
    "int8_negative": np.clip(np.rint(RNG.normal(0, 20, (300, 70))), -128, 127).astype(np.int8),
    "int8_extremes": np.array([-128, 127, 0, -1, 1] * 999, np.int8),
    "int16": RNG.integers(-32768, 32768, (40, 50)).astype(np.int16),
    "uint16_counts_1_and_2": np.concatenate([np.arange(65536), np.arange(0, 65536, 3)])
    .astype(np.uint16),                                 # full alphabet, uneven counts
    "fibonacci_counts": np.repeat(np.arange(30), [int(1.618 ** i) + 1 for i in range(30)])
    .astype(np.uint8),                                  # needs codes longer than MAX_LEN
}


@pytest.mark.parametrize("name", sorted(STREAMS))
def test_roundtrip_is_exact(name):
    x = STREAMS[name]
    c = encode(x)
    y = decode(c, x.dtype.name, x.shape)
    assert y.dtype == x.dtype and y.shape == x.shape
    np.testing.assert_array_equal(y, x)
    assert c.lengths.dtype == np.uint8 and c.bits.dtype == np.uint8
    assert c.offsets.size == lanes(x.size) and c.offsets.dtype.kind == "u"


@pytest.mark.parametrize("name", sorted(STREAMS))
def test_code_lengths_are_a_prefix_code_within_the_limit(name):
    x = STREAMS[name]
    ls = encode(x).lengths.astype(np.int64)
    assert ls.max(initial=0) <= MAX_LEN
    assert np.sum(2.0 ** -ls[ls > 0]) <= 1.0          # Kraft


def test_encoding_is_deterministic_and_near_the_entropy():
    x = STREAMS["skewed_uint8"]
    a, b = encode(x), encode(x.copy())
    for f in ("lengths", "offsets", "bits"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f))
    h = empirical_entropy(x)
    coded = 8 * a.bits.size / x.size
    assert h <= coded < h + 0.1                        # Huffman: within 1 bit, here far less
    assert empirical_entropy(STREAMS["one_symbol"]) == 0.0
    assert empirical_entropy(STREAMS["all_distinct"]) == pytest.approx(8.0)


def test_one_symbol_takes_one_bit_each():
    c = encode(STREAMS["one_symbol"])
    assert c.bits.size == 5000 // 8


def test_length_limit_flattens_counts():
    counts = np.array([int(1.618 ** i) + 1 for i in range(40)], np.int64)
    assert code_lengths(counts).max() == MAX_LEN


@pytest.mark.parametrize("change", [
    lambda c: {"bits": c.bits[:-1]},                                  # truncated
    lambda c: {"bits": np.append(c.bits, np.uint8(0))},               # trailing junk
    lambda c: {"bits": c.bits[:1]},                                   # far too short
    lambda c: {"lengths": np.full(256, 1, np.uint8)},                 # Kraft violated
    lambda c: {"lengths": np.full(256, 17, np.uint8)},                # too long
    lambda c: {"lengths": np.zeros(256, np.uint8)},                   # no code at all
    lambda c: {"lengths": np.full(70000, 8, np.uint8)},               # alphabet too large
    lambda c: {"lengths": c.lengths.astype(np.int16)},                # wrong dtype
    lambda c: {"offsets": c.offsets[:-1]},                            # wrong lane count
    lambda c: {"offsets": c.offsets[::-1].copy()},                    # not increasing
    lambda c: {"offsets": (c.offsets + np.uint32(1)).astype(c.offsets.dtype)},
    lambda c: {"bits": c.bits ^ np.uint8(0xFF)},                      # flipped bits
])
def test_malformed_streams_raise_model_format_error(change):
    x = STREAMS["skewed_uint8"]
    c = encode(x)
    with pytest.raises(ModelFormatError, match="huffman"):
        decode(dataclasses.replace(c, **change(c)), "uint8", x.shape, "w")


def test_declared_count_larger_than_the_bits_is_refused_before_allocating():
    c = encode(np.arange(10, dtype=np.uint8))
    with pytest.raises(ModelFormatError, match="cannot fit"):
        decode(c, "uint8", (1 << 40,), "w")
    with pytest.raises(ModelFormatError, match="empty"):
        decode(c, "uint8", (0,), "w")
    with pytest.raises(ModelFormatError, match="dtype"):
        decode(c, "float32", (10,), "w")


def test_an_incomplete_code_never_decodes_garbage():
    # a single-symbol code has length 1: the codeword '1' is not a code, it must be refused
    c = encode(np.zeros(16, np.uint8))
    bad = HuffmanCode(c.lengths, c.offsets, np.full_like(c.bits, 0xFF), c.count)
    with pytest.raises(ModelFormatError, match="corrupt"):
        decode(bad, "uint8", (16,), "w")


def test_a_million_symbols_decode_fast():
    import time
    x = np.minimum(RNG.geometric(0.2, 1_000_000), 255).astype(np.uint8)
    c = encode(x)
    t0 = time.perf_counter()
    y = decode(c, "uint8", x.shape)
    assert time.perf_counter() - t0 < 2.0             # ~0.03 s measured; generous on CI
    np.testing.assert_array_equal(y, x)
