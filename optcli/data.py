"""Datasets for run / eval / calibration: an .npz whose keys are the model's input names, plus
optional `labels` (int, [N]). Loaded without pickles and checked against the model's inputs
(rank, fixed dims, dtype kind, equal N) before anything runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from optcli.errors import DataError
from optcli.graph import Model
from optcli.io import read_npz


@dataclass(frozen=True)
class Dataset:
    path: str
    inputs: dict[str, np.ndarray]       # model input name -> [N, ...]
    labels: np.ndarray | None = None    # [N] int64

    def __len__(self) -> int:
        return len(next(iter(self.inputs.values())))

    def batches(self, batch_size: int):
        """Yields (inputs, labels) slices of at most batch_size samples, in order."""
        for i in range(0, len(self), batch_size):
            feeds = {k: v[i:i + batch_size] for k, v in self.inputs.items()}
            yield feeds, None if self.labels is None else self.labels[i:i + batch_size]

    def head(self, n: int | None) -> "Dataset":
        if n is None:
            return self
        lab = None if self.labels is None else self.labels[:n]
        return Dataset(self.path, {k: v[:n] for k, v in self.inputs.items()}, lab)


def load_dataset(path: str | Path, model: Model, samples: int | None = None) -> Dataset:
    path = Path(path)
    arrays = read_npz(path, what="data file")
    inputs = {}
    for vi in model.graph.inputs:
        if vi.name not in arrays:
            raise DataError(f"{path}: no array '{vi.name}' for model input '{vi.name}' "
                            f"(file has: {', '.join(sorted(arrays)) or 'nothing'})")
        a = arrays[vi.name]
        if a.ndim != len(vi.shape):
            raise DataError(f"{path}: '{vi.name}' has shape {list(a.shape)}, model expects "
                            f"{list(vi.shape)}")
        if a.dtype.kind not in "fiub":
            raise DataError(f"{path}: '{vi.name}' has non-numeric dtype {a.dtype}")
        if a.dtype.kind == "f" and not np.isfinite(a).all():
            raise DataError(f"{path}: '{vi.name}' contains NaN/Inf")
        inputs[vi.name] = a
    sizes = {k: len(v) for k, v in inputs.items()}
    labels = arrays.get("labels")
    if labels is not None:
        if labels.ndim != 1 or labels.dtype.kind not in "iu":
            raise DataError(f"{path}: 'labels' must be a 1-D integer array")
        sizes["labels"] = len(labels)
        labels = labels.astype(np.int64)
    if len(set(sizes.values())) != 1:
        raise DataError(f"{path}: arrays disagree on the number of samples: {sizes}")
    if not next(iter(sizes.values())):
        raise DataError(f"{path}: no samples")
    return Dataset(str(path), inputs, labels).head(samples)
