"""Training data: an .npz (optcli's data-file layout: the model's input names + `labels`) or
the IDX files MNIST and Fashion-MNIST ship in (LeCun et al. 1998; Xiao et al. 2017).

IDX: 2 zero bytes, a type byte (0x08 = uint8), the number of dimensions, each dimension as a
big-endian int32, then the data; optionally gzip-compressed. Given the images file
(`train-images-idx3-ubyte[.gz]`), labels come from the `labels-idx1` file beside it when it
exists. Images [N, H, W] are reshaped to the model's input rank ([N, 1, H, W] or [N, H*W]).
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from optcli.data import Dataset, load_dataset
from optcli.errors import DataError
from optcli.graph import Model

IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def is_idx(path: Path) -> bool:
    return "idx" in path.name and not path.name.endswith(".npz")


def read_idx(path: Path) -> np.ndarray:
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] not in IDX_TYPES:
        raise DataError(f"{path}: not an IDX file (bad magic)")
    ndim = raw[3]
    dims = np.frombuffer(raw, ">i4", ndim, 4).astype(np.int64)
    dtype = np.dtype(IDX_TYPES[raw[2]])
    start, count = 4 + 4 * ndim, int(np.prod(dims))
    if len(dims) != ndim or len(raw) != start + count * dtype.itemsize:
        raise DataError(f"{path}: IDX header says {list(dims)} but the file holds "
                        f"{len(raw) - start} data bytes")
    return np.frombuffer(raw, dtype, count, start).reshape(dims).astype(dtype.newbyteorder("="))


def load_training_data(path: str | Path, model: Model) -> Dataset:
    """The training set at `path`, checked against the model's inputs."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: training data not found")
    if not is_idx(path):
        return load_dataset(path, model)
    images = read_idx(path)
    vi = model.graph.inputs[0]
    if images.ndim == 3 and len(vi.shape) in (2, 4):
        n = len(images)
        images = images.reshape((n, 1) + images.shape[1:] if len(vi.shape) == 4 else (n, -1))
    labels_path = _labels_file(path)
    labels = None if labels_path is None else read_idx(labels_path).astype(np.int64)
    if labels is not None and len(labels) != len(images):
        raise DataError(f"{labels_path}: {len(labels)} labels for {len(images)} images")
    tmp = Dataset(str(path), {vi.name: images}, labels)
    return _checked(tmp, model)


def _labels_file(images: Path) -> Path | None:
    """The `labels-idx1` file beside an `images-idx3` one, gzipped or not."""
    if "images-idx3" not in images.name:
        return None
    stem = images.name.replace("images-idx3", "labels-idx1").removesuffix(".gz")
    for name in (stem, stem + ".gz"):
        if (images.parent / name).is_file():
            return images.parent / name
    return None


def _checked(data: Dataset, model: Model) -> Dataset:
    """The same rank checks as an .npz gets."""
    for vi in model.graph.inputs:
        a = data.inputs.get(vi.name)
        if a is None or a.ndim != len(vi.shape) or any(
                isinstance(w, int) and w != d for w, d in zip(vi.shape, a.shape)):
            got = "?" if a is None else list(a.shape)
            raise DataError(f"{data.path}: images of shape {got} do not fit model input "
                            f"'{vi.name}' {list(vi.shape)}")
    return data
