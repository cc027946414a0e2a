"""Read PyTorch `.pt`/`.pth` state dicts without torch and without unpickling arbitrary objects.

    from optcli.interop.torch_checkpoint import read_state_dict
    sd = read_state_dict(Path("lenet5.pt"))      # {"features.0.weight": array[6, 1, 5, 5], ...}

A checkpoint is a pickle whose tensors point at raw storages kept beside it:
- zip format (torch >= 1.6): `<top>/data.pkl`, `<top>/data/<key>` (raw bytes of storage
  `key`), `<top>/byteorder` ("little" when absent);
- legacy format: pickled magic number 0x1950a86a20f9469cfc6c, protocol version, sys info,
  then the object pickle, then the list of storage keys, then each storage as an 8-byte
  little-endian element count followed by its raw bytes.

The pickle is read by `_SafeUnpickler`, whose `find_class` maps the few globals a state dict
needs (`torch._utils._rebuild_tensor_v2`, `_rebuild_parameter`, `collections.OrderedDict`,
the `torch.*Storage` classes, dtypes, `torch.Size`) to stand-ins defined here and refuses
every other global before anything is called, so a hostile pickle cannot run code. Tensors
come back as NumPy arrays (bfloat16 widened exactly to float32). Why not `torch.load(...,
weights_only=True)`: optcli must not depend on torch, and this reader is ~250 lines.
"""

from __future__ import annotations

import collections
import io
import pickle
import zipfile
from pathlib import Path
from typing import Any, Callable

import numpy as np

from optcli.errors import ModelFormatError

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_BF16 = "bfloat16"

# torch storage class / dtype name -> NumPy dtype ("bfloat16" is read as uint16 bits)
_STORAGE_DTYPES = {
    "FloatStorage": "float32", "HalfStorage": "float16", "BFloat16Storage": _BF16,
    "DoubleStorage": "float64", "LongStorage": "int64", "IntStorage": "int32",
    "ShortStorage": "int16", "CharStorage": "int8", "ByteStorage": "uint8",
    "BoolStorage": "bool", "UntypedStorage": "uint8",
}
_TORCH_DTYPES = {
    "float32": "float32", "float": "float32", "float16": "float16", "half": "float16",
    "bfloat16": _BF16, "float64": "float64", "double": "float64", "int64": "int64",
    "long": "int64", "int32": "int32", "int": "int32", "int16": "int16", "int8": "int8",
    "uint8": "uint8", "bool": "bool",
}
_WRAPPERS = ("state_dict", "model")      # {"state_dict": {...}} / {"model": {...}} nesting


class _StorageType:
    """Stand-in for a `torch.*Storage` class or a `torch.<dtype>`: only carries the dtype."""

    __slots__ = ("dtype",)

    def __init__(self, dtype: str):
        self.dtype = dtype


class _Storage:
    """A flat storage: `data` is a 1-D array of `dtype` (uint16 bit patterns for bfloat16)."""

    __slots__ = ("data", "dtype", "key")

    def __init__(self, data: np.ndarray, dtype: str, key: str):
        self.data, self.dtype, self.key = data, dtype, key


def _np_dtype(dtype: str, byteorder: str = "little") -> np.dtype:
    base = np.dtype("uint16" if dtype == _BF16 else dtype)
    return base.newbyteorder("<" if byteorder == "little" else ">")


class _TensorRef:
    """What `_rebuild_tensor_v2` returns: a view of a storage, read once storages are loaded."""

    __slots__ = ("storage", "offset", "size", "stride")

    def __init__(self, storage: _Storage, offset: int, size: tuple, stride: tuple):
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride

    def array(self) -> np.ndarray:
        """The view (storage offset + strides) copied into a new native-order array."""
        st, size = self.storage, self.size
        last = self.offset + sum((n - 1) * s for n, s in zip(size, self.stride))
        if all(size) and last >= st.data.size:
            raise _Refused(f"tensor view out of range of storage '{st.key}' "
                           f"({st.data.size} elements)")
        item = st.data.itemsize
        base = st.data[self.offset:] if all(size) else st.data[:0]
        view = np.lib.stride_tricks.as_strided(
            base, shape=size, strides=tuple(s * item for s in self.stride))
        out = np.array(view, dtype=view.dtype.newbyteorder("="))    # copy, native byte order
        if st.dtype == _BF16:     # bfloat16 = upper 16 bits of a float32: widen exactly
            out = (out.astype(np.uint32) << 16).view(np.float32)
        return out


def _rebuild_tensor(storage: Any, offset: Any, size: Any, stride: Any, *_: Any) -> _TensorRef:
    """Stand-in for torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)."""
    if not isinstance(storage, _Storage):
        raise _Refused("a tensor whose storage is not a persistent storage")
    size, stride = tuple(size), tuple(stride)
    dims = [offset, *size, *stride]
    if len(size) != len(stride) or not all(isinstance(d, int) and d >= 0 for d in dims):
        raise _Refused(f"tensor on storage '{storage.key}' has a bad size/stride")
    return _TensorRef(storage, offset, size, stride)


def _rebuild_parameter(data: Any, *_: Any) -> Any:
    return data


class _Refused(Exception):
    """Raised inside the unpickler; turned into a ModelFormatError naming the file."""


def _allowed(module: str, name: str) -> Any:
    """The stand-in for global `module.name`, or None when it is not allowed."""
    if module == "torch._utils" and name == "_rebuild_tensor_v2":
        return _rebuild_tensor
    if module == "torch._utils" and name in ("_rebuild_parameter",
                                             "_rebuild_parameter_with_state"):
        return _rebuild_parameter
    if module == "collections" and name == "OrderedDict":
        return collections.OrderedDict
    if module in ("torch", "torch.storage", "torch.cuda") and name in _STORAGE_DTYPES:
        return _StorageType(_STORAGE_DTYPES[name])
    if module == "torch" and name in _TORCH_DTYPES:
        return _StorageType(_TORCH_DTYPES[name])
    if module == "torch" and name == "Size":
        return tuple
    return None


class _SafeUnpickler(pickle.Unpickler):
    """Resolves only `_allowed` globals; storages come from `load_storage(key, dtype, numel)`."""

    def __init__(self, f: io.BufferedIOBase,
                 load_storage: Callable[[str, str, int], np.ndarray] | None = None):
        super().__init__(f)
        self._load_storage = load_storage
        self.storages: dict[str, _Storage] = {}

    def find_class(self, module: str, name: str) -> Any:
        found = _allowed(module, name)
        if found is None:
            raise _Refused(f"pickle references '{module}.{name}'")
        return found

    def persistent_load(self, pid: Any) -> _Storage:
        # ('storage', storage_type, key, location, numel[, view_metadata])
        if self._load_storage is None:
            raise _Refused("a storage reference outside the object pickle")
        if not (isinstance(pid, tuple) and len(pid) in (5, 6) and pid[0] == "storage"
                and isinstance(pid[1], _StorageType) and isinstance(pid[4], int)):
            raise _Refused(f"unsupported persistent id {str(pid)[:60]}")
        key, dtype, numel = str(pid[2]), pid[1].dtype, pid[4]
        if key not in self.storages:
            self.storages[key] = _Storage(self._load_storage(key, dtype, numel), dtype, key)
        return self.storages[key]


def read_state_dict(path: Path) -> dict[str, np.ndarray]:
    """The flat state dict (dotted key -> array) of a torch checkpoint; ModelFormatError else."""
    path = Path(path)
    if not path.is_file():
        raise ModelFormatError(f"{path}: checkpoint not found")
    try:
        obj = _read_zip(path) if zipfile.is_zipfile(path) else _read_legacy(path)
        return flatten_state_dict(path, obj)
    except _Refused as e:
        msg = str(e)
        if msg.startswith("pickle references"):
            msg += ", which is not allowed (only tensors and plain containers load)"
        raise ModelFormatError(f"{path}: {msg}") from None
    except (pickle.UnpicklingError, EOFError, zipfile.BadZipFile, ValueError, KeyError,
            TypeError, IndexError, AttributeError, OverflowError, MemoryError) as e:
        raise ModelFormatError(f"{path}: not a readable PyTorch checkpoint (corrupt or "
                               f"truncated: {type(e).__name__}: {str(e)[:80]})") from None


def _read_zip(path: Path) -> Any:
    with zipfile.ZipFile(path) as zf:
        pkls = [n for n in zf.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
        if len(pkls) != 1:
            raise _Refused("zip archive without exactly one '<folder>/data.pkl' "
                           "(not a PyTorch checkpoint)")
        top = pkls[0][: -len("data.pkl")]
        names = set(zf.namelist())
        order = "little"
        if f"{top}byteorder" in names:
            order = zf.read(f"{top}byteorder").decode("ascii", "replace").strip()
            if order not in ("little", "big"):
                raise _Refused(f"unknown byteorder '{order[:20]}'")

        def load(key: str, dtype: str, numel: int) -> np.ndarray:
            member = f"{top}data/{key}"
            if member not in names:
                raise _Refused(f"storage '{key}' missing from the archive")
            raw = zf.read(member)
            data = np.frombuffer(raw, dtype=_np_dtype(dtype, order))
            if data.size < numel:
                raise _Refused(f"storage '{key}' holds {data.size} elements, expected {numel}")
            return data

        return _SafeUnpickler(io.BytesIO(zf.read(pkls[0])), load).load()


def _read_legacy(path: Path) -> Any:
    f = io.BytesIO(path.read_bytes())
    magic = _SafeUnpickler(f).load()
    if magic != LEGACY_MAGIC:
        raise _Refused("not a PyTorch checkpoint (neither a zip archive nor the legacy "
                       "magic number)")
    _SafeUnpickler(f).load(), _SafeUnpickler(f).load()        # protocol version, sys info
    pending: dict[str, tuple[str, int]] = {}

    def defer(key: str, dtype: str, numel: int) -> np.ndarray:
        pending[key] = (dtype, numel)
        return np.empty(0, np.uint8)            # replaced once the raw storages are read

    up = _SafeUnpickler(f, defer)
    obj = up.load()
    keys = _SafeUnpickler(f).load()
    if not isinstance(keys, list) or sorted(map(str, keys)) != sorted(pending):
        raise _Refused("legacy storage key list does not match the pickle")
    for key in map(str, keys):
        _fill_legacy_storage(f, up.storages[key], pending[key][1])
    return obj


def _fill_legacy_storage(f: io.BytesIO, storage: _Storage, numel: int) -> None:
    """One raw storage: int64 element count (little endian), then count * itemsize bytes."""
    head = f.read(8)
    if len(head) != 8:
        raise EOFError(f"storage '{storage.key}' is missing")
    count = int(np.frombuffer(head, "<i8")[0])
    dtype = _np_dtype(storage.dtype)
    raw = f.read(count * dtype.itemsize) if 0 <= count else b""
    if count < numel or len(raw) != count * dtype.itemsize:
        raise EOFError(f"storage '{storage.key}' is truncated")
    storage.data = np.frombuffer(raw, dtype)


def flatten_state_dict(path: Path, obj: Any) -> dict[str, np.ndarray]:
    """Arrays of a (possibly nested) dict as {dotted key: array}; other leaves are skipped."""
    if isinstance(obj, dict):
        for wrapper in _WRAPPERS:
            if isinstance(obj.get(wrapper), dict):
                obj = obj[wrapper]
                break
    out: dict[str, np.ndarray] = {}
    _collect(obj, "", out)
    if not out:
        raise ModelFormatError(f"{path}: checkpoint holds no tensors (expected a state dict)")
    return out


def _collect(obj: Any, prefix: str, out: dict[str, np.ndarray]) -> None:
    if isinstance(obj, _TensorRef):
        out[prefix] = obj.array()
    elif isinstance(obj, dict):
        for k, v in obj.items():
            _collect(v, f"{prefix}.{k}" if prefix else str(k), out)
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            _collect(v, f"{prefix}.{i}" if prefix else str(i), out)


def import_torch(path: Path, arch: Path) -> Any:
    """A `Model` from state dict `path` and architecture spec `arch` (see `arch_spec`)."""
    from optcli.interop.arch_spec import import_torch as from_spec
    return from_spec(path, arch)
