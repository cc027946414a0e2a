"""Weights shared by worker processes without copying: the parent's decoded float32 weights
written once into one file (in /dev/shm when there is one, i.e. RAM), memory-mapped
read-only by every worker. The page cache holds one copy whatever the number of workers.

Arrays are stored in the layout the parent's Runtime chose (a linear weight is often the
transposed view of a C-order [in, out] buffer, see runtime.py), so a worker's Runtime finds
them already laid out and copies nothing. Tensors the Runtime keeps in another form (CSR,
int8 codes, decode-per-call) travel pickled with the model skeleton: they are small.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from optcli.formats import DenseTensor
from optcli.graph import Model
from optcli.runtime import Runtime

ALIGN = 64           # bytes: every array starts on a cache line
SHARED_FORMS = ("dense", "decoded")


@dataclass(frozen=True)
class Slot:
    name: str
    offset: int
    shape: tuple[int, ...]      # of the C-order buffer in the file
    dtype: str
    transposed: bool            # the tensor is the buffer's transpose


@dataclass(frozen=True)
class SharedWeights:
    path: str
    slots: tuple[Slot, ...]
    nbytes: int


def _buffer(a: np.ndarray) -> tuple[np.ndarray, bool]:
    """(C-order array to write, whether the tensor is its transpose)."""
    if a.flags.c_contiguous:
        return a, False
    if a.ndim == 2 and a.T.flags.c_contiguous:
        return a.T, True
    return np.ascontiguousarray(a), False


def share(runtime: Runtime) -> tuple[SharedWeights, Model]:
    """Write the runtime's dense/decoded weights to one file; return its layout and the model
    without those tensors (the skeleton a worker receives)."""
    names = [n for n, f in runtime.forms.items()
             if f in SHARED_FORMS and isinstance(runtime.weights[n], np.ndarray)]
    folder = "/dev/shm" if os.path.isdir("/dev/shm") else None
    fd, path = tempfile.mkstemp(prefix="optcli-weights-", suffix=".bin", dir=folder)
    slots, offset = [], 0
    with os.fdopen(fd, "wb") as f:
        for name in names:
            buf, transposed = _buffer(runtime.weights[name])
            offset = -(-offset // ALIGN) * ALIGN
            f.seek(offset)
            f.write(buf.tobytes())
            slots.append(Slot(name, offset, tuple(buf.shape), buf.dtype.name, transposed))
            offset += buf.nbytes
    skeleton = runtime.model.replace(
        tensors={k: t for k, t in runtime.model.tensors.items() if k not in names})
    return SharedWeights(path, tuple(slots), offset), skeleton


def attach(shared: SharedWeights, skeleton: Model) -> Model:
    """The whole model again, its shared tensors read-only views of the mapped file."""
    if not shared.slots:
        return skeleton
    mm = np.memmap(shared.path, dtype=np.uint8, mode="r")
    tensors = dict(skeleton.tensors)
    for s in shared.slots:
        count = int(np.prod(s.shape))
        a = np.frombuffer(mm, dtype=s.dtype, count=count, offset=s.offset).reshape(s.shape)
        tensors[s.name] = DenseTensor(a.T if s.transposed else a)
    return skeleton.replace(tensors=tensors)


def release(shared: SharedWeights) -> None:
    Path(shared.path).unlink(missing_ok=True)
