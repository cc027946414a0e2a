"""Data parallelism past one machine, on a Dask cluster (`pip install 'optcli[dask]'`).

    optcli eval model.npz --data eval.npz --executor dask://10.0.0.5:8786
    optcli run model.npz --input x.npz -o y.npz --executor scheduler.json

- the model is sent once to every worker (`client.scatter(..., broadcast=True)`); each worker
  builds its Runtime once, on the first chunk, and keeps it (`_RUNTIMES`, keyed by a token);
- the dataset travels in chunks (a batch each), one task per chunk, `retries` on failure; a
  worker that dies takes its running tasks with it and the scheduler runs them again on
  another worker; a chunk the scheduler cancels instead (seen here once in ~10 runs of the
  kill test: "cancelled for reason: unknown") is submitted again by `map`, so no chunk is lost;
- results are collected in submission order, one per chunk, so none is duplicated and the
  output order is the input order; at most `window` chunks are in flight.
"""

from __future__ import annotations

import threading
import uuid
from collections import deque
from concurrent.futures import CancelledError
from pathlib import Path
from typing import Any, Iterable, Iterator

from optcli.errors import InputError
from optcli.graph import Model
from optcli.parallel.base import Executor, Feeds, no_profile
from optcli.parallel.plan import ExecutionPlan
from optcli.parallel.subgraph import join_rows, split_rows

RETRIES = 3
CONNECT_TIMEOUT_S = 20
_RUNTIMES: dict[str, Any] = {}        # on a worker: token -> Runtime
_LOCK = threading.Lock()


def connect(address: str):
    """A distributed.Client for 'dask://HOST:PORT' or a scheduler file path."""
    try:
        from distributed import Client
    except ImportError:
        raise InputError("--executor needs Dask: pip install 'optcli[dask]'") from None
    if address.startswith("dask://"):
        kwargs = {"address": "tcp://" + address[len("dask://"):]}
    elif Path(address).is_file():
        kwargs = {"scheduler_file": address}
    else:
        raise InputError(f"--executor {address!r}: expected dask://HOST:PORT or a Dask "
                         "scheduler file")
    try:
        return Client(timeout=f"{CONNECT_TIMEOUT_S}s", **kwargs)
    except (OSError, TimeoutError) as e:          # unreachable, refused, timed out
        raise InputError(f"--executor {address}: cannot reach the Dask scheduler "
                         f"({type(e).__name__}: {e})") from None


def _run_chunk(model: Model, token: str, weights: str, feeds: Feeds) -> Feeds:
    """On a worker: the cached Runtime (built once per worker and model) run on one chunk."""
    from optcli.runtime import Runtime
    with _LOCK:
        rt = _RUNTIMES.get(token)
        if rt is None:
            rt = _RUNTIMES[token] = Runtime(model, weights=weights)
    return rt.run(feeds)


class DaskExecutor(Executor):
    streams = True                     # map() keeps chunks in flight: evaluate reads ahead

    def __init__(self, model: Model, address: str | None = None, *, client=None,
                 weights: str = "auto", window: int | None = None, retries: int = RETRIES):
        self.client = client if client is not None else connect(address)
        self._own = client is None
        self.workers = max(1, len(self.client.scheduler_info()["workers"]))
        self.plan_ = ExecutionPlan("data", self.workers, "process", 1)
        self.notes = (f"Dask cluster {self.client.scheduler.address}",)
        self.window = window or 2 * self.workers
        self.retries, self.weights = retries, weights
        self.token = uuid.uuid4().hex
        self._source = model
        self._model = self.client.scatter(model, broadcast=True, hash=False)

    def _submit(self, i: int, feeds: Feeds, attempt: int = 0):
        return self.client.submit(_run_chunk, self._model, self.token, self.weights, feeds,
                                  retries=self.retries, pure=False,
                                  key=f"optcli-chunk-{self.token}-{i}-{attempt}")

    def _result(self, i: int, feeds: Feeds, future) -> Feeds:
        """The chunk's output. A chunk the scheduler gave up on while a worker died (cancelled,
        or KilledWorker after its retries) is submitted again, up to `retries` times, with the
        model scattered anew (its copy may have gone with the worker): chunks are pure, so
        running one twice changes nothing, and each is yielded once."""
        from distributed.scheduler import KilledWorker
        for attempt in range(1, self.retries + 1):
            try:
                return future.result()
            except (CancelledError, KilledWorker):
                self._model = self.client.scatter(self._source, broadcast=True, hash=False)
                future = self._submit(i, feeds, attempt)
        return future.result()

    def map(self, batches: Iterable[Feeds]) -> Iterator[Feeds]:
        """Outputs of every chunk, in order, with up to `window` chunks in flight."""
        pending: deque = deque()
        for i, feeds in enumerate(batches):
            pending.append((i, feeds, self._submit(i, feeds)))
            if len(pending) >= self.window:
                yield self._result(*pending.popleft())
        while pending:
            yield self._result(*pending.popleft())

    def run(self, feeds: Feeds, profile: dict[str, float] | None = None) -> Feeds:
        no_profile(profile, "dask")
        return join_rows(list(self.map(split_rows(feeds, self.workers))))

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "executor": "dask", "retries": self.retries}

    def close(self) -> None:
        if self._own:
            self.client.close()
