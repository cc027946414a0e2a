"""The only module that knows the .npz layout (format version 1, see docs/format.md).

An optcli model file is a NumPy .npz archive (large arrays stored, small ones deflated):
- `__optcli__`: the manifest, UTF-8 JSON bytes stored as a uint8 array;
- `<tensor name>::<role>`: each array of each stored tensor (role from its encoding).

Reading never unpickles (`allow_pickle=False`), checks the archive's declared sizes before
reading them, and validates manifest, tensors and graph before returning. Writing is atomic:
a temporary file beside the target is written, flushed, re-read and verified, then renamed
(optcli/atomic.py).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from optcli import __version__
from optcli.atomic import StagedFile
from optcli.errors import InputError, ModelFormatError, OptcliError
from optcli.formats import ENCODINGS, StoredTensor
from optcli.graph import Graph, Model, Node, ValueInfo, validate
from optcli.parallel.plan import check_stored_plan

FORMAT_NAME = "optcli-model"
FORMAT_VERSION = 1
MANIFEST_KEY = "__optcli__"
MAX_MANIFEST_BYTES = 64 << 20
MAX_TOTAL_BYTES = 64 << 30   # refuse archives that claim more than this when unpacked


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# ----------------------------------------------------------------------------- reading

def load_model(path: str | os.PathLike) -> Model:
    """Read and fully validate a model; every error is a one-line ModelFormatError."""
    path = Path(path)
    arrays = read_npz(path, what="model")
    try:
        return _from_arrays(arrays)
    except OptcliError as e:
        raise type(e)(f"{path}: {e}") from None


def read_npz(path: Path, what: str = "file") -> dict[str, np.ndarray]:
    """All arrays of an .npz, refusing pickles, bombs and corruption with one clear line."""
    if not path.is_file():
        raise InputError(f"{path}: {what} not found")
    try:
        with zipfile.ZipFile(path) as zf:
            total = sum(i.file_size for i in zf.infolist())
            if total > MAX_TOTAL_BYTES:
                raise ModelFormatError(f"{path}: archive claims {total} bytes unpacked; refused")
            bad = zf.testzip()
            if bad is not None:
                raise ModelFormatError(f"{path}: member '{bad}' is corrupt (CRC mismatch)")
        with np.load(path, allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    except ModelFormatError:
        raise
    except ValueError as e:
        if "pickle" in str(e).lower():
            raise ModelFormatError(f"{path}: contains a pickled object array; pickles are "
                                   "never loaded") from None
        raise ModelFormatError(f"{path}: not a valid .npz {what}: {e}") from None
    except (zipfile.BadZipFile, OSError, EOFError, KeyError) as e:
        raise ModelFormatError(f"{path}: not a valid .npz {what} "
                               f"(corrupt or truncated: {e})") from None


def _from_arrays(arrays: dict[str, np.ndarray]) -> Model:
    if MANIFEST_KEY not in arrays:
        raise ModelFormatError(f"no '{MANIFEST_KEY}' manifest: not an optcli model")
    raw = arrays[MANIFEST_KEY]
    if raw.dtype != np.uint8 or raw.ndim != 1 or raw.size > MAX_MANIFEST_BYTES:
        raise ModelFormatError("manifest must be a 1-D uint8 array of JSON bytes")
    try:
        man = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise ModelFormatError(f"manifest is not valid JSON: {type(e).__name__}: {e}") from None
    if not isinstance(man, dict) or man.get("format") != FORMAT_NAME:
        raise ModelFormatError("manifest 'format' is not 'optcli-model'")
    version = man.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ModelFormatError(f"format version {version!r} is newer than this optcli reads "
                               f"({FORMAT_VERSION}); upgrade optcli")
    try:
        model = Model(
            name=str(man.get("name", "model")),
            graph=_graph_from_json(man["graph"]),
            tensors=_tensors_from_json(man["tensors"], arrays),
            task=dict(_typed(man.get("task", {}), dict, "task")),
            provenance=dict(_typed(man.get("provenance", {}), dict, "provenance")),
            extra=dict(_typed(man.get("extra", {}), dict, "extra")),
        )
    except KeyError as e:
        raise ModelFormatError(f"manifest: missing key {e}") from None
    validate(model)
    check_stored_plan(model)        # extra.parallel, the parallelize step's plan
    return model


def _typed(value: Any, kind: type | tuple, where: str) -> Any:
    """value if it is of the JSON type `kind`, else a ModelFormatError naming `where`."""
    if not isinstance(value, kind) or isinstance(value, bool) and kind in (int, (int, str)):
        raise ModelFormatError(f"manifest: {where} has the wrong type ({type(value).__name__})")
    return value


def _names(value: Any, where: str) -> Any:
    """A value name, or a list of them (a variadic input)."""
    if isinstance(value, list):
        return [_typed(v, str, where) for v in value]
    return _typed(value, str, where)


def _vinfo(d: Any, where: str) -> ValueInfo:
    d = _typed(d, dict, where)
    shape = tuple(_typed(x, (int, str), f"{where}.shape")
                  for x in _typed(d["shape"], list, f"{where}.shape"))
    return ValueInfo(_typed(d["name"], str, f"{where}.name"), shape,
                     _typed(d.get("dtype", "float32"), str, f"{where}.dtype"),
                     _typed(d.get("meaning", ""), str, f"{where}.meaning"))


def _node(n: Any, i: int) -> Node:
    w = f"graph.nodes[{i}]"
    n = _typed(n, dict, w)
    inputs = {_typed(k, str, f"{w}.inputs"): _names(v, f"{w}.inputs.{k}")
              for k, v in _typed(n["inputs"], dict, f"{w}.inputs").items()}
    outputs = tuple(_typed(o, str, f"{w}.outputs")
                    for o in _typed(n["outputs"], list, f"{w}.outputs"))
    return Node(_typed(n["name"], str, f"{w}.name"), _typed(n["op"], str, f"{w}.op"), inputs,
                outputs, dict(_typed(n.get("attrs", {}), dict, f"{w}.attrs")))


def _graph_from_json(g: Any) -> Graph:
    g = _typed(g, dict, "graph")
    nodes = tuple(_node(n, i) for i, n in enumerate(_typed(g["nodes"], list, "graph.nodes")))
    ins = tuple(_vinfo(v, f"graph.inputs[{i}]")
                for i, v in enumerate(_typed(g["inputs"], list, "graph.inputs")))
    outs = tuple(_vinfo(v, f"graph.outputs[{i}]")
                 for i, v in enumerate(_typed(g["outputs"], list, "graph.outputs")))
    return Graph(nodes, ins, outs)


def _tensors_from_json(table: Any, arrays: dict[str, np.ndarray]) -> dict[str, StoredTensor]:
    out = {}
    for name, t in _typed(table, dict, "tensors").items():
        w = f"tensors.{name}"
        t = _typed(t, dict, w)
        cls = ENCODINGS.get(t["encoding"]) if isinstance(t["encoding"], str) else None
        if cls is None:
            raise ModelFormatError(f"tensor '{name}': unknown encoding {t['encoding']!r}; "
                                   f"valid: {', '.join(ENCODINGS)}")
        parts = {}
        for role, key in _typed(t["arrays"], dict, f"{w}.arrays").items():
            if not isinstance(key, str) or key not in arrays:
                raise ModelFormatError(f"tensor '{name}': array {key!r} missing from archive")
            parts[role] = arrays[key]
        shape = tuple(_typed(s, int, f"{w}.shape") for s in _typed(t["shape"], list, w))
        if any(s < 0 for s in shape):
            raise ModelFormatError(f"tensor '{name}': negative dimension in shape")
        out[name] = cls.from_stored(name, shape, str(t.get("dtype", "float32")), parts,
                                    dict(_typed(t.get("params", {}), dict, f"{w}.params")))
    return out


# ----------------------------------------------------------------------------- writing

def to_arrays(model: Model) -> dict[str, np.ndarray]:
    """The archive's contents: the manifest plus every tensor's arrays."""
    arrays: dict[str, np.ndarray] = {}
    table = {}
    for name, t in model.tensors.items():
        keys = {}
        for role, a in t.arrays().items():
            keys[role] = f"{name}::{role}"
            arrays[keys[role]] = np.ascontiguousarray(a)
        table[name] = {"shape": list(t.shape), "dtype": t.dtype, "encoding": t.encoding,
                       "params": t.params(), "arrays": keys}
    man = manifest(model, table)
    text = json.dumps(man, sort_keys=True, separators=(",", ":"))     # compact: no spaces
    arrays[MANIFEST_KEY] = np.frombuffer(text.encode(), np.uint8)
    return arrays


def manifest(model: Model, table: dict[str, Any]) -> dict[str, Any]:
    g = model.graph
    vi = lambda v: {"name": v.name, "shape": list(v.shape), "dtype": v.dtype,  # noqa: E731
                    "meaning": v.meaning}
    prov = dict(model.provenance)
    prov.setdefault("optcli_version", __version__)
    return {
        "format": FORMAT_NAME, "format_version": FORMAT_VERSION, "name": model.name,
        "task": model.task, "provenance": prov, "extra": model.extra, "tensors": table,
        "graph": {
            "inputs": [vi(v) for v in g.inputs], "outputs": [vi(v) for v in g.outputs],
            "nodes": [{"name": n.name, "op": n.op, "inputs": n.inputs,
                       "outputs": list(n.outputs), "attrs": n.attrs} for n in g.nodes],
        },
    }


def save_model(model: Model, path: str | os.PathLike, *, force: bool = False,
               protect: tuple[Path, ...] = ()) -> int:
    """Write atomically and verify; returns bytes on disk. Never overwrites a `protect` path."""
    with stage_model(model, Path(path), force=force, protect=protect) as staged:
        return staged.commit()


def stage_model(model: Model, path: Path, *, force: bool = False,
                protect: tuple[Path, ...] = ()) -> "StagedFile":
    """Write the model to a verified temporary file beside `path`; `commit()` renames it."""
    validate(model)
    arrays = to_arrays(model)
    return StagedFile(path, lambda f: write_npz(f, arrays), force=force, protect=protect,
                      verify=lambda tmp: _verify(tmp, arrays, _from_arrays))


def _verify(tmp: Path, arrays: dict[str, np.ndarray], check=None) -> None:
    """Re-read what was written: the same arrays, bit for bit (and a valid model)."""
    back = read_npz(tmp)
    if set(back) != set(arrays) or any(not np.array_equal(back[k], arrays[k]) for k in arrays):
        raise OptcliError(f"{tmp}: verification of the written file failed")
    if check is not None:
        check(back)


def write_npz_atomic(path: Path, arrays: dict[str, np.ndarray], *, force: bool = False,
                     protect: tuple[Path, ...] = ()) -> int:
    """Atomically write plain arrays (e.g. `optcli run` outputs); returns bytes on disk."""
    with StagedFile(path, lambda f: write_npz(f, arrays), force=force, protect=protect,
                    verify=lambda tmp: _verify(tmp, arrays)) as staged:
        return staged.commit()


SMALL_MEMBER_BYTES = 64 << 10    # members up to this size (and the manifest) are deflated
ZIP64_FROM_BYTES = 1 << 31       # larger members get zip64 size fields


def member_bytes(key: str, a: np.ndarray) -> int:
    """The exact bytes array `a` adds to an archive written by write_npz under `key`: its
    .npy bytes (deflated when small), the zip local header and central directory entry (30 + 46
    bytes, the name twice, zip64 fields for huge members). Its manifest entry is not counted."""
    name = len(f"{key}.npy".encode())
    headers = 76 + 2 * name + (48 if a.nbytes >= ZIP64_FROM_BYTES else 0)
    if not _deflated(key, a):
        return headers + a.nbytes + _npy_header_bytes(a)
    c = zlib.compressobj(9, zlib.DEFLATED, -15)        # raw deflate, as zipfile stores it
    return headers + len(c.compress(_npy_bytes(a)) + c.flush())


def _deflated(key: str, a: np.ndarray) -> bool:
    """Members write_npz deflates: the manifest and arrays of at most SMALL_MEMBER_BYTES."""
    return a.nbytes <= SMALL_MEMBER_BYTES or key == MANIFEST_KEY


def _npy_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.asanyarray(a), allow_pickle=False)
    return buf.getvalue()


def _npy_header_bytes(a: np.ndarray) -> int:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, np.lib.format.header_data_from_array_1_0(a))
    return len(buf.getvalue())


def write_npz(f, arrays: dict[str, np.ndarray]) -> None:
    """An .npz readable by np.load, byte-for-byte deterministic: sorted members, fixed
    timestamps (np.savez stamps the current time, which breaks reproducibility). Large arrays
    are stored as they are (no decompression on load); members of at most 64 KiB (biases,
    scales, codebooks, index arrays of small layers) and the JSON manifest are deflated, which
    removes most of the per-member overhead (a 128-byte .npy header each) that otherwise
    dominates a small compressed model's file."""
    with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        for key in sorted(arrays):
            a = np.asanyarray(arrays[key])
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            if _deflated(key, a):
                zf.writestr(info, _npy_bytes(a), compress_type=zipfile.ZIP_DEFLATED,
                            compresslevel=9)
                continue
            with zf.open(info, "w", force_zip64=a.nbytes >= ZIP64_FROM_BYTES) as member:
                np.lib.format.write_array(member, a, allow_pickle=False)
