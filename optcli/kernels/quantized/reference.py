"""The oracle: decode the whole packed weight to float32 with formats/bitpack.py, then one
float32 matmul. Slow and obviously correct; the fast kernels are tested against it."""

from __future__ import annotations

import numpy as np

from optcli.formats import bitpack
from optcli.kernels.quantized.layout import PackedWeight


def unpack_codes(w: PackedWeight) -> np.ndarray:
    """The integer codes, int64 [rows, cols] (unsigned values, or signed for int8 codes)."""
    rows, cols = w.shape
    if w.codes.dtype == np.int8:
        return w.codes.astype(np.int64)
    return np.stack([bitpack.unpack(w.codes[r], w.bits, cols) for r in range(rows)]
                    ).astype(np.int64).reshape(rows, cols)


def group_params(w: PackedWeight) -> tuple[np.ndarray, np.ndarray]:
    """scale float32 and zero point int64, each broadcast to [rows, cols]."""
    rows, cols = w.shape
    cols_group = np.arange(cols) // w.group                     # group of each column
    def expand(a: np.ndarray) -> np.ndarray:
        a = a[:, cols_group] if a.shape[1] > 1 else a
        return np.broadcast_to(a, (rows, cols))
    return expand(w.scale), expand(w.zero.astype(np.int64))


def decode(w: PackedWeight) -> np.ndarray:
    """W as float32 [rows, cols]: (code - zero) * scale, each factor float32."""
    scale, zero = group_params(w)
    return (unpack_codes(w) - zero).astype(np.float32) * scale


def linear(x: np.ndarray, weight: PackedWeight, bias: np.ndarray | None = None) -> np.ndarray:
    """y[..., out] = x[..., in] @ decode(weight).T + bias."""
    y = np.asarray(x, np.float32) @ decode(weight).T
    return y + bias if bias is not None else y
