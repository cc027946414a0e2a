"""Outputs computed ahead, handed out in order through the Runtime's `run(feeds)`: lets
`evaluate` (which calls run once per batch, in order) consume an executor's `map`, whose
chunks may be in flight on several workers (Dask) at once."""

from __future__ import annotations

from typing import Iterator

import numpy as np

from optcli.errors import OptcliError

Feeds = dict[str, np.ndarray]


class OrderedOutputs:
    def __init__(self, outputs: Iterator[Feeds]):
        self._outputs = iter(outputs)

    def run(self, feeds: Feeds, profile: dict[str, float] | None = None) -> Feeds:
        """The next output; its batch size must be the one of the feeds it stands for."""
        out = next(self._outputs, None)
        n = len(next(iter(feeds.values())))
        if out is None or len(next(iter(out.values()))) != n:
            raise OptcliError("parallel outputs out of step with the batches evaluated")
        return out
