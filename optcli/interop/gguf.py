"""A strict reader for GGUF files (versions 2 and 3), the llama.cpp model format.

Spec: ggml's `docs/gguf.md` (github.com/ggml-org/ggml). Layout, all little-endian:

    magic "GGUF" | version u32 | tensor_count u64 | kv_count u64
    kv_count x  (key: string, value_type u32, value)        string = u64 length + UTF-8
    tensor_count x (name: string, n_dims u32, dims u64[n_dims], ggml_type u32, offset u64)
    padding to `general.alignment` (default 32) | data section (tensor offsets are relative)

GGUF lists dims fastest-varying first (ne[0] = a linear layer's input features), so a tensor
listed (in, out) is the NumPy row-major array [out, in] (the HF / PyTorch layout):
`GGUFFile.tensor(name)` returns that reversed shape, dequantized to float32.

We read the format ourselves rather than depending on the `gguf` package: the format is
small, and a reader of our own checks every offset and size against the file before touching
it, reports errors as one line naming the file and the key or tensor, and keeps the core
install free of the package (the tests use `gguf` as the reference). The file is memory-mapped
read-only, so tensors are read one at a time and nothing else stays resident.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from optcli.errors import ModelFormatError
from optcli.interop.gguf_quants import BY_CODE, UNSUPPORTED_NAMES, dequantize

MAGIC = b"GGUF"
DEFAULT_ALIGNMENT = 32
MAX_DIMS = 4                                 # GGML_MAX_DIMS
# value_type -> struct format of the scalar types (8 = string, 9 = array are handled apart)
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?",
            10: "<Q", 11: "<q", 12: "<d"}
_NP_SCALARS = {0: "<u1", 1: "<i1", 2: "<u2", 3: "<i2", 4: "<u4", 5: "<i4", 6: "<f4",
               10: "<u8", 11: "<i8", 12: "<f8"}
STRING, ARRAY = 8, 9


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]       # NumPy order: GGUF dims reversed, e.g. [out, in]
    type_name: str               # ggml type, e.g. "Q4_1"
    type_code: int
    offset: int                  # absolute byte offset in the file
    nbytes: int


class _Cursor:
    """Sequential little-endian reads from a buffer, each bounds-checked against its size."""

    def __init__(self, buf: memoryview, path: Path):
        self.buf, self.pos, self.path, self.size = buf, 0, path, len(buf)

    def need(self, n: int, what: str) -> None:
        if n < 0 or self.pos + n > self.size:
            raise ModelFormatError(f"{self.path}: truncated or corrupt file while reading {what} "
                                   f"(needs {n} bytes at offset {self.pos}, file has {self.size})")

    def scalar(self, fmt: str, what: str) -> Any:
        n = struct.calcsize(fmt)
        self.need(n, what)
        (v,) = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += n
        return v

    def string(self, what: str) -> str:
        n = self.scalar("<Q", what)
        self.need(n, what)
        raw = bytes(self.buf[self.pos:self.pos + n])
        self.pos += n
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ModelFormatError(f"{self.path}: {what} is not valid UTF-8") from None

    def value(self, vtype: int, what: str) -> Any:
        if vtype in _SCALARS:
            return self.scalar(_SCALARS[vtype], what)
        if vtype == STRING:
            return self.string(what)
        if vtype == ARRAY:
            return self.array(what)
        raise ModelFormatError(f"{self.path}: {what} has unknown value type {vtype}")

    def array(self, what: str) -> list:
        etype, count = self.scalar("<I", what), self.scalar("<Q", what)
        if etype in _NP_SCALARS:                  # numeric arrays in one read
            dt = np.dtype(_NP_SCALARS[etype])
            self.need(count * dt.itemsize, what)
            a = np.frombuffer(self.buf, dt, count, self.pos)
            self.pos += count * dt.itemsize
            return a.tolist()
        if etype == 7:
            self.need(count, what)
            a = np.frombuffer(self.buf, np.uint8, count, self.pos)
            self.pos += count
            return [bool(x) for x in a]
        if count > self.size:                     # every element takes at least one byte
            raise ModelFormatError(f"{self.path}: {what}: array length {count} exceeds the file")
        return [self.value(etype, f"{what}[{i}]") for i in range(count)]


class GGUFFile:
    """A parsed GGUF header over a read-only memory map of the file."""

    def __init__(self, path: Path, version: int, metadata: dict[str, Any],
                 tensors: dict[str, TensorInfo], mm: np.ndarray):
        self.path, self.version, self.metadata, self.tensors = path, version, metadata, tensors
        self._mm = mm

    def raw(self, name: str) -> np.ndarray:
        """The stored bytes of tensor `name` (uint8 view into the memory map)."""
        info = self._info(name)
        return self._mm[info.offset:info.offset + info.nbytes]

    def tensor(self, name: str) -> np.ndarray:
        """Tensor `name` dequantized to float32 in NumPy order (GGUF dims reversed)."""
        info = self._info(name)
        qt = BY_CODE[info.type_code]
        return dequantize(self.raw(name), qt).reshape(info.shape)

    def _info(self, name: str) -> TensorInfo:
        if name not in self.tensors:
            raise ModelFormatError(f"{self.path}: no tensor '{name}'")
        return self.tensors[name]


def read_gguf(path: Path | str) -> GGUFFile:
    """Parse and check the header of GGUF file `path`; tensors are decoded on demand."""
    path = Path(path)
    try:
        mm = np.memmap(path, dtype=np.uint8, mode="r")
    except (OSError, ValueError) as e:            # ValueError: an empty file
        raise ModelFormatError(f"{path}: cannot read as GGUF ({e})") from None
    cur = _Cursor(memoryview(mm), path)
    cur.need(4, "magic")
    if bytes(cur.buf[:4]) != MAGIC:
        raise ModelFormatError(f"{path}: not a GGUF file (magic {bytes(cur.buf[:4])!r})")
    cur.pos = 4
    version = cur.scalar("<I", "version")
    if version not in (2, 3):
        hint = " (big-endian files are not supported)" if version >= 1 << 16 else ""
        raise ModelFormatError(f"{path}: GGUF version {version} not supported (2, 3){hint}")
    n_tensors, n_kv = cur.scalar("<Q", "tensor count"), cur.scalar("<Q", "metadata count")
    metadata = _read_metadata(cur, n_kv)
    infos = [_read_tensor_info(cur, i) for i in range(_bounded(cur, n_tensors, "tensor count"))]
    align = metadata.get("general.alignment", DEFAULT_ALIGNMENT)
    if not isinstance(align, int) or isinstance(align, bool) or align <= 0 or align & (align - 1):
        raise ModelFormatError(f"{path}: general.alignment {align!r} is not a power of two")
    data_start = -(-cur.pos // align) * align
    tensors = _place_tensors(path, infos, data_start, align, len(mm))
    return GGUFFile(path, version, metadata, tensors, mm)


def _bounded(cur: _Cursor, n: int, what: str) -> int:
    if n > cur.size:                              # each entry takes well over a byte
        raise ModelFormatError(f"{cur.path}: {what} {n} is larger than the file")
    return n


def _read_metadata(cur: _Cursor, n_kv: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for i in range(_bounded(cur, n_kv, "metadata count")):
        key = cur.string(f"metadata key #{i}")
        vtype = cur.scalar("<I", f"metadata '{key}' type")
        if key in out:
            raise ModelFormatError(f"{cur.path}: duplicate metadata key '{key}'")
        out[key] = cur.value(vtype, f"metadata '{key}'")
    return out


def _read_tensor_info(cur: _Cursor, i: int) -> tuple[str, list[int], int, int]:
    name = cur.string(f"tensor #{i} name")
    n_dims = cur.scalar("<I", f"tensor '{name}' n_dims")
    if not 1 <= n_dims <= MAX_DIMS:
        raise ModelFormatError(f"{cur.path}: tensor '{name}': {n_dims} dims (1..{MAX_DIMS})")
    dims = [cur.scalar("<Q", f"tensor '{name}' dims") for _ in range(n_dims)]
    code = cur.scalar("<I", f"tensor '{name}' type")
    offset = cur.scalar("<Q", f"tensor '{name}' offset")
    return name, dims, code, offset


def _place_tensors(path: Path, infos: list, data_start: int, align: int,
                   file_size: int) -> dict[str, TensorInfo]:
    """Check each tensor's type, shape, alignment and extent; return name -> TensorInfo."""
    out: dict[str, TensorInfo] = {}
    for name, dims, code, offset in infos:
        where = f"{path}: tensor '{name}'"
        if name in out:
            raise ModelFormatError(f"{where}: duplicate tensor name")
        qt = BY_CODE.get(code)
        if qt is None:
            tname = UNSUPPORTED_NAMES.get(code, f"unknown type {code}")
            raise ModelFormatError(f"{where}: ggml type {tname} is not supported "
                                   f"(supported: {', '.join(t.name for t in BY_CODE.values())})")
        if any(d <= 0 for d in dims) or dims[0] % qt.block_size:
            raise ModelFormatError(f"{where}: dims {dims} invalid for {qt.name} "
                                   f"(first dim must be a multiple of {qt.block_size})")
        n = int(np.prod(dims, dtype=object))
        nbytes = n // qt.block_size * qt.type_size
        start = data_start + offset
        if offset % align:
            raise ModelFormatError(f"{where}: data offset {offset} is not a multiple of the "
                                   f"alignment {align}")
        if start + nbytes > file_size:
            raise ModelFormatError(f"{where}: data ({nbytes} bytes at byte {start}) runs past "
                                   f"the end of the file ({file_size} bytes): truncated?")
        out[name] = TensorInfo(name, tuple(reversed(dims)), qt.name, code, start, nbytes)
    return out
