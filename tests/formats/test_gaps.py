"""The `gaps` sparse layout: 4-bit relative column indices with escapes (formats/gaps.py)."""

import numpy as np
import pytest

from optcli.errors import ModelFormatError
from optcli.formats import SparseTensor
from optcli.formats.gaps import ESCAPE, decode_gaps, encode_gaps, gaps_nbytes


def _roundtrip(w):
    s = SparseTensor.from_dense(w, "gaps")
    back = SparseTensor.from_stored("w", s.shape, "float32", s.arrays(), s.params())
    return s, back


@pytest.mark.parametrize("density", [0.0, 0.001, 0.05, 0.5, 1.0])
def test_gaps_roundtrip_exactly_at_any_density(density):
    rng = np.random.default_rng(1)
    w = rng.standard_normal((40, 700)).astype(np.float32)
    w[rng.random(w.shape) >= density] = 0
    s, back = _roundtrip(w)
    np.testing.assert_array_equal(back.decode(), w)
    np.testing.assert_array_equal(s.coords()[1], np.nonzero(w)[1])
    assert s.gaps.nbytes == gaps_nbytes(*np.nonzero(w))


def test_gaps_handle_long_runs_row_ends_and_empty_rows():
    w = np.zeros((5, 1000), np.float32)
    w[0, [0, 14, 15, 16, 29, 30, 999]] = 1       # gaps 0, 13, 0, 0, 12, 0, 968 (64 escapes)
    w[2, 999] = 2                                 # only the last column; rows 1, 3, 4 empty
    w[4, 15] = 3                                  # a gap of exactly one escape, terminal 0
    _, back = _roundtrip(w)
    np.testing.assert_array_equal(back.decode(), w)


def test_escape_nibbles_cost_no_value_slot():
    rows, cols = np.array([0]), np.array([ESCAPE * 3 + 2])
    packed = encode_gaps(rows, cols)
    assert packed.size == 2                       # 3 escapes + terminal = 4 nibbles
    np.testing.assert_array_equal(decode_gaps(packed, np.array([0, 1])), cols)


@pytest.mark.parametrize("mutate, message", [
    (lambda g: g[:-1], "indices"),                             # truncated stream
    (lambda g: np.concatenate([g, [0xFF]]), "trailing"),       # extra escapes
    (lambda g: np.concatenate([g, [0x00]]), "indices"),        # extra terminals
    (lambda g: np.concatenate([[0xFF] * 5, g]), "out of range"),   # columns pushed past the end
])
def test_malformed_gaps_are_refused_with_the_tensor_name(mutate, message):
    rng = np.random.default_rng(2)
    w = rng.standard_normal((6, 20)).astype(np.float32)
    w[rng.random(w.shape) > 0.3] = 0
    s = SparseTensor.from_dense(w, "gaps")
    arrays = dict(s.arrays(), gaps=mutate(s.gaps).astype(np.uint8))
    with pytest.raises(ModelFormatError, match=f"tensor 'w'.*{message}"):
        SparseTensor.from_stored("w", s.shape, "float32", arrays, s.params())
