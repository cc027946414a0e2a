"""Statistics of layer inputs, streamed over the calibration set in one pass.

Like `optcli.calibration.layer_inputs` (fed by the same `stream_values`: batched by length,
padding cut off and masked out), but with any statistic that has `add(x)`: a `Histogram` per
input value for the activation observers, a `ChannelMax` for SmoothQuant. Layers that read
the same value share one statistic. Nothing but the statistics is kept, so memory does not
grow with the data.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from optcli.calibration import stream_values
from optcli.graph import Model, Node


class ChannelMax:
    """max |x[..., j]| over every row of x[..., C] (linear inputs: the last axis)."""

    def __init__(self) -> None:
        self.amax: np.ndarray | None = None

    def add(self, x: np.ndarray) -> None:
        m = np.abs(x.reshape(-1, x.shape[-1])).max(axis=0, initial=0.0).astype(np.float64)
        self.amax = m if self.amax is None else np.maximum(self.amax, m)


def observe_inputs(model: Model, nodes: list[Node], data: dict[str, np.ndarray],
                   make: Callable[[], object], batch_size: int = 32) -> dict[str, object]:
    """Node name -> the statistic (from `make()`) of its input `x` over `data`."""
    by_value = {v: make() for v in dict.fromkeys(n.inputs["x"] for n in nodes)}
    for batch in stream_values(model, list(by_value), data, batch_size):
        for v, stat in by_value.items():
            stat.add(batch[v])
    return {n.name: by_value[n.inputs["x"]] for n in nodes}
