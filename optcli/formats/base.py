"""The storage-format contract every encoding of a weight tensor implements.

A stored tensor is a logical float array (`shape`) kept in some encoding: a few NumPy arrays
(`arrays()`, exactly what is written to disk and held in memory) plus small JSON parameters
(`params()`). Its byte size is the sum of those arrays' bytes, so a size report is a sum over
formats and can never disagree with the file.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np

from optcli.errors import ModelFormatError


class StoredTensor(ABC):
    encoding: ClassVar[str]
    shape: tuple[int, ...]

    @abstractmethod
    def decode(self) -> np.ndarray:
        """The logical tensor as a new float32 array (the reference decoder)."""

    @abstractmethod
    def arrays(self) -> dict[str, np.ndarray]:
        """The arrays that hold this tensor, keyed by role ('data', 'indices', ...)."""

    def params(self) -> dict[str, Any]:
        """Small JSON-able parameters of the encoding (axis, bits, ...)."""
        return {}

    @classmethod
    @abstractmethod
    def from_stored(cls, name: str, shape: tuple[int, ...], dtype: str,
                    arrays: dict[str, np.ndarray], params: dict[str, Any]) -> "StoredTensor":
        """Rebuild from a file, checking every array's shape and dtype (raise ModelFormatError)."""

    @property
    def dtype(self) -> str:
        """The logical dtype the tensor decodes to."""
        return "float32"

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def rows(self) -> int:
        """The first axis: output rows/channels, in the 2-D view [rows, cols] sparse and
        packed layouts store (cols = everything else, e.g. C*kh*kw of a conv weight)."""
        return self.shape[0] if self.shape else 1

    @property
    def cols(self) -> int:
        return self.size // max(self.rows, 1)

    @property
    def nbytes(self) -> int:
        return int(sum(a.nbytes for a in self.arrays().values()))

    @property
    def nonzeros(self) -> int:
        return int(np.count_nonzero(self.decode()))

    @property
    def bits_per_weight(self) -> float:
        return 8.0 * self.nbytes / max(self.size, 1)

    def resident(self) -> "StoredTensor":
        """The form the runtime executes. An encoding that exists only for the disk (entropy
        coding) returns the tensor it decoded to at load; every other encoding is itself."""
        return self

    def describe(self) -> str:
        """A short label for tables, e.g. 'dense f32' or 'int8/channel'."""
        return self.encoding


def expect(name: str, arrays: dict[str, np.ndarray], role: str, dtypes: tuple[str, ...],
           shape: tuple[int, ...] | None = None, ndim: int | None = None) -> np.ndarray:
    """Fetch arrays[role], checking dtype and shape; errors name the tensor and the role."""
    if role not in arrays:
        raise ModelFormatError(f"tensor '{name}': missing array '{role}'")
    a = arrays[role]
    if a.dtype.name not in dtypes:
        raise ModelFormatError(
            f"tensor '{name}': array '{role}' has dtype {a.dtype.name}, expected one of {dtypes}")
    if shape is not None and tuple(a.shape) != tuple(shape):
        raise ModelFormatError(
            f"tensor '{name}': array '{role}' has shape {list(a.shape)}, expected {list(shape)}")
    if ndim is not None and a.ndim != ndim:
        raise ModelFormatError(f"tensor '{name}': array '{role}' must be {ndim}-D, got {a.ndim}-D")
    return a


def check_finite(name: str, a: np.ndarray) -> None:
    """NaN or Inf in float weights is an input error naming the tensor."""
    if a.dtype.kind == "f" and not np.isfinite(a).all():
        bad = int(np.size(a) - np.count_nonzero(np.isfinite(a)))
        raise ModelFormatError(f"tensor '{name}': {bad} NaN/Inf value(s)")
