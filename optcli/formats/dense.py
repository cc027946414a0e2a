"""Dense storage: the array itself, float32 or float16 (or int64 for index tables)."""

from __future__ import annotations

from typing import Any

import numpy as np

from optcli.formats.base import StoredTensor, check_finite, expect

DENSE_DTYPES = ("float32", "float16", "int64", "int32")


class DenseTensor(StoredTensor):
    encoding = "dense"

    def __init__(self, data: np.ndarray):
        self.data = data
        self.shape = tuple(int(s) for s in data.shape)

    def decode(self) -> np.ndarray:
        return self.data.astype(np.float32, copy=True)

    def arrays(self) -> dict[str, np.ndarray]:
        return {"data": self.data}

    @property
    def dtype(self) -> str:
        return "float32" if self.data.dtype.kind == "f" else self.data.dtype.name

    @property
    def nonzeros(self) -> int:
        return int(np.count_nonzero(self.data))

    def describe(self) -> str:
        short = {"float32": "f32", "float16": "f16"}
        return f"dense {short.get(self.data.dtype.name, self.data.dtype.name)}"

    @classmethod
    def from_stored(cls, name: str, shape: tuple[int, ...], dtype: str,
                    arrays: dict[str, np.ndarray], params: dict[str, Any]) -> "DenseTensor":
        data = expect(name, arrays, "data", DENSE_DTYPES, shape=shape)
        check_finite(name, data)
        return cls(data)
