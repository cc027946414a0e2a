"""Bit-packing of small unsigned codes (formats/bitpack.py): exact round trips, the layout."""

import numpy as np
import pytest

from optcli.formats.bitpack import code_dtype, pack, packed_nbytes, unpack


@pytest.mark.parametrize("bits", range(1, 17))
@pytest.mark.parametrize("n", [0, 1, 7, 8, 9, 1001])
def test_round_trip_every_width_and_odd_lengths(bits, n):
    codes = np.random.default_rng(bits * 1000 + n).integers(0, 1 << bits, n)
    packed = pack(codes, bits)
    assert packed.dtype == np.uint8 and packed.size == packed_nbytes(n, bits)
    back = unpack(packed, bits, n)
    assert back.dtype == code_dtype(bits)
    np.testing.assert_array_equal(back, codes)


def test_layout_is_an_msb_first_stream():
    np.testing.assert_array_equal(pack(np.array([5, 1, 7]), 3), [0b10100111, 0b10000000])
    np.testing.assert_array_equal(pack(np.array([1, 0, 1, 1]), 1), [0b10110000])
    np.testing.assert_array_equal(pack(np.array([0xABC]), 12), [0xAB, 0xC0])


def test_extremes_and_errors():
    for bits in (1, 8, 16):
        top = np.full(5, (1 << bits) - 1)
        np.testing.assert_array_equal(unpack(pack(top, bits), bits, 5), top)
    with pytest.raises(ValueError):
        pack(np.array([4]), 2)
    with pytest.raises(ValueError):
        pack(np.array([0]), 0)
    with pytest.raises(ValueError):
        unpack(np.zeros(1, np.uint8), 5, 2)       # 10 bits need 2 bytes
