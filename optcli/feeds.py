"""Model inputs for a given batch size: taken from a dataset when there is one (tiled to the
batch), otherwise synthesised from the input declarations (seeded)."""

from __future__ import annotations

import numpy as np

from optcli.data import Dataset
from optcli.errors import DataError
from optcli.graph import Model


def batch_feeds(model: Model, batch: int, data: Dataset | None = None, seq: int = 16,
                seed: int = 0) -> dict[str, np.ndarray]:
    if data is not None:
        idx = np.arange(batch) % len(data)
        return {k: v[idx] for k, v in data.inputs.items()}
    rng = np.random.default_rng(seed)
    feeds = {}
    for vi in model.graph.inputs:
        shape = [batch if d == "batch" else (seq if isinstance(d, str) else d)
                 for d in vi.shape]
        if vi.meaning == "attention_mask":
            feeds[vi.name] = np.ones(shape, vi.dtype)      # every position kept
        elif vi.dtype.startswith("int"):
            feeds[vi.name] = rng.integers(0, _vocab_size(model, vi.name), shape).astype(vi.dtype)
        else:
            feeds[vi.name] = rng.standard_normal(shape).astype(vi.dtype)
    return feeds


def _vocab_size(model: Model, input_name: str) -> int:
    """The row count of the embedding table that reads this input (ids must index it)."""
    for n in model.graph.nodes:
        if n.op == "embedding" and n.inputs.get("ids") == input_name:
            return model.tensors[n.inputs["weight"]].shape[0]
    raise DataError(f"cannot synthesise ids for input '{input_name}': no embedding reads it; "
                    "pass a data file")
