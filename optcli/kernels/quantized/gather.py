"""`embedding` over a PackedWeight: a quantized table [vocab, D] stays packed and each call
decodes only the rows its ids name.

    y[..., :] = (u[id, :] - zero[id, g]) * scale[id, g]        for every id in ids[...]

A gather reads B*T rows of a table of `vocab`, so decoding them costs next to nothing while the
table keeps its packed size resident (MiniLM's 30522 x 384 token table: 45 MB float32, 11.7 MB
int8, 6.3 MB at 4 bits in groups of 128 with float16 scales). The rows are decoded by
tiles.decode_rows_numpy from a PackedWeight of the selected rows (codes and per-row
parameters gathered first): the same decode the oracle and the NumPy `linear` use.
"""

from __future__ import annotations

import numpy as np

from optcli.kernels.quantized.layout import PackedWeight
from optcli.kernels.quantized.tiles import decode_rows_numpy
from optcli.kernels.reference.contract import check_ids


def embedding_packed(ids: np.ndarray, weight: PackedWeight) -> np.ndarray:
    """ids[...] (int) -> decoded rows [..., D] float32; an id outside [0, vocab) is a
    ValueError, as for a float table."""
    ids = np.asarray(ids)
    check_ids(ids, weight.shape[0])
    flat = ids.reshape(-1)
    rows = PackedWeight(weight.codes[flat], _rows(weight.scale, flat), _rows(weight.zero, flat),
                        weight.bits, weight.group, (flat.size, weight.shape[1]))
    out = np.empty((flat.size, weight.shape[1]), np.float32)
    decode_rows_numpy(rows, 0, out)
    return out.reshape(*ids.shape, weight.shape[1])


def _rows(a: np.ndarray, flat: np.ndarray) -> np.ndarray:
    """Per-row parameters [vocab, G] gathered to [n, G]; broadcast ones ([1, G]) unchanged."""
    return a[flat] if a.shape[0] > 1 else a
