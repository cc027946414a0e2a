"""A strict reader of the safetensors format (huggingface/safetensors, "Format" in its README).

    from optcli.interop.safetensors import read_safetensors
    tensors = read_safetensors("model.safetensors")     # name -> read-only np.ndarray

Layout: 8 bytes little-endian u64 N, then N bytes of UTF-8 JSON
`{"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {..}}`,
then the raw little-endian data; offsets are relative to the start of the data block.

`write_safetensors` writes the same layout (the tests' fixtures, and HF-style exports).

Why a reader of our own and not the `safetensors` package: it is ~150 lines, needs only NumPy,
memory-maps the file read-only, and checks everything the format promises before a single
byte of data is used, so a truncated or hostile file ends in one line naming the file and
the tensor. The checks follow the reference implementation: header length bounded, header
is a JSON object, every entry has exactly dtype/shape/data_offsets, offsets are sorted,
contiguous from 0 (no holes, no overlaps), end exactly at the end of the file, and each span
equals prod(shape) * itemsize. BF16 is widened to float32 by a 16-bit shift (exact); every
other dtype is returned as a zero-copy view of the map.
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path
from typing import Any

import numpy as np

from optcli.errors import ModelFormatError

MAX_HEADER_BYTES = 100_000_000     # the reference implementation's limit
_DTYPES = {                        # safetensors dtype -> little-endian NumPy dtype
    "F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "<u2",
    "I64": "<i8", "I32": "<i4", "I16": "<i2", "I8": "i1", "U8": "u1", "BOOL": "?",
}
_ENTRY_KEYS = {"dtype", "shape", "data_offsets"}


def read_header(path: str | Path) -> tuple[dict[str, dict[str, Any]], dict[str, str], int]:
    """(tensor entries sorted by offset, __metadata__, start of the data block) of `path`."""
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as f:
        raw = f.read(8)
        if len(raw) < 8:
            raise ModelFormatError(f"{path}: not a safetensors file (shorter than 8 bytes)")
        (n,) = struct.unpack("<Q", raw)
        if n > MAX_HEADER_BYTES or 8 + n > size:
            raise ModelFormatError(f"{path}: header length {n} exceeds the file "
                                   f"({size} bytes) or the {MAX_HEADER_BYTES}-byte limit")
        text = f.read(n)
    try:
        header = json.loads(text.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelFormatError(f"{path}: header is not valid UTF-8 JSON ({e})") from None
    if not isinstance(header, dict):
        raise ModelFormatError(f"{path}: header is not a JSON object")
    meta = header.pop("__metadata__", None) or {}
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise ModelFormatError(f"{path}: __metadata__ must map strings to strings")
    entries = {name: _check_entry(path, name, e) for name, e in header.items()}
    _check_layout(path, entries, size - 8 - n)
    return dict(sorted(entries.items(), key=lambda kv: kv[1]["data_offsets"])), meta, 8 + n


def _check_entry(path: Path, name: str, e: Any) -> dict[str, Any]:
    """One header entry, its fields type-checked and its span matched to shape x itemsize."""
    where = f"{path}: tensor '{name}'"
    if not isinstance(e, dict) or set(e) != _ENTRY_KEYS:
        raise ModelFormatError(f"{where}: entry must have exactly the keys "
                               f"{sorted(_ENTRY_KEYS)}")
    dtype, shape, offsets = e["dtype"], e["shape"], e["data_offsets"]
    if dtype not in _DTYPES:
        raise ModelFormatError(f"{where}: unsupported dtype {dtype!r}; supported: "
                               f"{', '.join(_DTYPES)}")
    if not (isinstance(shape, list) and all(_is_count(d) for d in shape)):
        raise ModelFormatError(f"{where}: shape {shape!r} is not a list of non-negative ints")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(map(_is_count, offsets))
            and offsets[0] <= offsets[1]):
        raise ModelFormatError(f"{where}: data_offsets {offsets!r} must be [begin, end] "
                               "with 0 <= begin <= end")
    want = math.prod(shape) * np.dtype(_DTYPES[dtype]).itemsize
    if offsets[1] - offsets[0] != want:
        raise ModelFormatError(f"{where}: data_offsets {offsets} span {offsets[1] - offsets[0]}"
                               f" bytes, but shape {shape} of {dtype} needs {want}")
    return e


def _is_count(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _check_layout(path: Path, entries: dict[str, dict[str, Any]], data_bytes: int) -> None:
    """Spans sorted by offset must tile [0, data_bytes) exactly: no gap, overlap or overrun."""
    end, prev = 0, None
    for name, e in sorted(entries.items(), key=lambda kv: kv[1]["data_offsets"]):
        begin, stop = e["data_offsets"]
        if stop > data_bytes:
            raise ModelFormatError(f"{path}: tensor '{name}': data_offsets {[begin, stop]} "
                                   f"run past the end of the data ({data_bytes} bytes; "
                                   "file truncated?)")
        if begin != end:
            what = f"overlaps tensor '{prev}'" if begin < end else f"leaves a gap after {end}"
            raise ModelFormatError(f"{path}: tensor '{name}': data_offsets {[begin, stop]} "
                                   f"{what}")
        end, prev = stop, name
    if end != data_bytes:
        raise ModelFormatError(f"{path}: {data_bytes - end} bytes after the last tensor "
                               "are not described by the header")


def read_safetensors(path: str | Path) -> dict[str, np.ndarray]:
    """Every tensor of `path`: name -> array (read-only memory-mapped views; BF16 -> float32)."""
    entries, _, start = read_header(path)
    data = np.memmap(path, dtype=np.uint8, mode="r") if entries else None
    out = {}
    for name, e in entries.items():
        begin, stop = e["data_offsets"]
        raw = data[start + begin:start + stop]
        raw = np.asarray(raw)                     # a plain ndarray view, not np.memmap
        arr = raw.view(_DTYPES[e["dtype"]]).reshape(tuple(e["shape"]))
        if e["dtype"] == "BF16":     # bfloat16 is the high half of a float32
            arr = (arr.astype(np.uint32) << 16).view(np.float32)
        out[name] = arr
    return out


def write_safetensors(path: str | Path, tensors: dict[str, np.ndarray],
                      metadata: dict[str, str] | None = None) -> None:
    """Write `tensors` (in sorted name order) as a safetensors file; the header is padded
    with spaces to a multiple of 8 bytes so every tensor starts 8-byte aligned."""
    names = {np.dtype(v).str: k for k, v in _DTYPES.items() if k != "BF16"}   # '<f4' -> F32
    header: dict[str, Any] = {"__metadata__": metadata} if metadata else {}
    offset, blobs = 0, []
    for name in sorted(tensors):
        a = np.asarray(tensors[name])            # tobytes() below writes C order
        a = a.astype(a.dtype.newbyteorder("<"), copy=False)
        if a.dtype.str not in names:
            raise ValueError(f"tensor '{name}': dtype {a.dtype} cannot be written")
        header[name] = {"dtype": names[a.dtype.str], "shape": list(a.shape),
                        "data_offsets": [offset, offset + a.nbytes]}
        offset += a.nbytes
        blobs.append(a.tobytes())
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text)
        for blob in blobs:
            f.write(blob)
