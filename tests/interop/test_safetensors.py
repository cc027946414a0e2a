"""The safetensors reader/writer: round trips, agreement with the `safetensors` package, and
one-line errors naming the file for every kind of corrupt file."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from optcli.errors import ModelFormatError
from optcli.interop.safetensors import read_safetensors, write_safetensors


def _tensors() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "w.f32": rng.standard_normal((3, 4)).astype(np.float32),
        "w.f16": rng.standard_normal((5,)).astype(np.float16),
        "w.f64": rng.standard_normal((2, 2)),
        "ids.i64": np.arange(7, dtype=np.int64).reshape(1, 7),
        "i32": np.array([-1, 2], np.int32), "i16": np.array([3], np.int16),
        "i8": np.array([-4, 5, 6], np.int8), "u8": np.array([250], np.uint8),
        "flags": np.array([True, False, True]), "empty": np.zeros((0, 3), np.float32),
        "scalar": np.array(1.5, np.float32),
    }


def _raw_file(path, header: dict | bytes, data: bytes = b"", length: int | None = None):
    text = header if isinstance(header, bytes) else json.dumps(header).encode()
    n = len(text) if length is None else length
    path.write_bytes(struct.pack("<Q", n) + text + data)
    return path


def test_round_trip_every_dtype(tmp_path):
    write_safetensors(tmp_path / "a.safetensors", _tensors(), {"format": "np"})
    got = read_safetensors(tmp_path / "a.safetensors")
    for k, v in _tensors().items():
        assert got[k].dtype == v.dtype and got[k].shape == v.shape
        np.testing.assert_array_equal(got[k], v)
        assert not got[k].flags.writeable          # read-only memory map


def test_agrees_with_the_safetensors_package(tmp_path):
    st = pytest.importorskip("safetensors.numpy")
    st.save_file(_tensors(), str(tmp_path / "pkg.safetensors"), metadata={"k": "v"})
    ours = read_safetensors(tmp_path / "pkg.safetensors")
    assert set(ours) == set(_tensors())
    for k, v in _tensors().items():
        np.testing.assert_array_equal(ours[k], v)
    write_safetensors(tmp_path / "ours.safetensors", _tensors())
    theirs = st.load_file(str(tmp_path / "ours.safetensors"))
    for k, v in _tensors().items():
        np.testing.assert_array_equal(theirs[k], v)


def test_bf16_widens_exactly_to_float32(tmp_path):
    values = np.array([1.0, -2.5, 3.140625, 1e-3, 65504.0], np.float32)
    bits = (values.view(np.uint32) >> 16).astype("<u2")        # truncate to bfloat16
    header = {"x": {"dtype": "BF16", "shape": [5], "data_offsets": [0, 10]}}
    got = read_safetensors(_raw_file(tmp_path / "b.safetensors", header, bits.tobytes()))["x"]
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, (bits.astype(np.uint32) << 16).view(np.float32))
    torch = pytest.importorskip("torch")
    ref = torch.tensor(values).to(torch.bfloat16).float().numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-2)             # torch rounds, we truncate


def _entry(dtype="F32", shape=(2,), offsets=(0, 8)):
    return {"dtype": dtype, "shape": list(shape), "data_offsets": list(offsets)}


CORRUPT = {
    "truncated data": ({"x": _entry(offsets=(0, 8))}, b"\0" * 4, None, "run past the end"),
    "offsets out of range": ({"x": _entry(offsets=(100, 108))}, b"\0" * 8, None,
                             "run past the end"),
    "overlapping": ({"a": _entry(offsets=(0, 8)), "b": _entry(offsets=(4, 12))},
                    b"\0" * 12, None, "overlaps tensor 'a'"),
    "gap": ({"a": _entry(offsets=(0, 8)), "b": _entry(offsets=(12, 20))}, b"\0" * 20, None,
            "leaves a gap"),
    "span vs shape": ({"x": _entry(shape=(3,), offsets=(0, 8))}, b"\0" * 8, None,
                      "needs 12"),
    "trailing bytes": ({"x": _entry()}, b"\0" * 12, None, "4 bytes after the last tensor"),
    "header too long": ({"x": _entry()}, b"\0" * 8, 1 << 40, "header length"),
    "bad json": (b"{not json", b"", None, "not valid UTF-8 JSON"),
    "not an object": (b"[1, 2]", b"", None, "not a JSON object"),
    "bad dtype": ({"x": _entry(dtype="F8")}, b"\0" * 8, None, "unsupported dtype"),
    "bad shape": ({"x": _entry(shape=(-2,))}, b"\0" * 8, None, "non-negative ints"),
    "extra key": ({"x": {**_entry(), "more": 1}}, b"\0" * 8, None, "exactly the keys"),
    "bad metadata": ({"__metadata__": {"a": 1}, "x": _entry()}, b"\0" * 8, None,
                     "__metadata__"),
}


@pytest.mark.parametrize("case", sorted(CORRUPT))
def test_corrupt_files_give_one_line_naming_the_file(tmp_path, case):
    header, data, length, words = CORRUPT[case]
    path = _raw_file(tmp_path / "bad.safetensors", header, data, length)
    with pytest.raises(ModelFormatError) as e:
        read_safetensors(path)
    msg = str(e.value)
    assert msg.startswith(str(path)) and "\n" not in msg and words in msg


def test_shorter_than_the_length_prefix(tmp_path):
    (tmp_path / "tiny.safetensors").write_bytes(b"\x01\x02")
    with pytest.raises(ModelFormatError, match="shorter than 8 bytes"):
        read_safetensors(tmp_path / "tiny.safetensors")


def test_truncated_real_layout(tmp_path):
    """A valid file cut short anywhere after the header fails cleanly."""
    path = tmp_path / "t.safetensors"
    write_safetensors(path, _tensors())
    blob = path.read_bytes()
    for cut in (len(blob) - 1, len(blob) // 2, 12):
        path.write_bytes(blob[:cut])
        with pytest.raises(ModelFormatError, match=str(path)):
            read_safetensors(path)
