"""The few calls `api.run_model`, `eval_model` and `bench_model` make to honour a plan:
`executing` yields what runs the model (the plain Runtime when there is no plan and no
override, so those commands behave exactly as before), `in_order` streams a dataset's
outputs through it, `ran` is the report's entry saying which plan ran."""

from __future__ import annotations

import contextlib
from typing import Any, Iterable, Iterator

from optcli.data import Dataset
from optcli.graph import Model
from optcli.parallel.base import Executor, Feeds
from optcli.parallel.ordered import OrderedOutputs
from optcli.parallel.resolve import ParallelOptions, executor_for
from optcli.runtime import Runtime


@contextlib.contextmanager
def executing(model: Model, options: ParallelOptions | None, weights: str = "auto",
              seq: int = 16) -> Iterator[Runtime | Executor]:
    ex = executor_for(model, options or ParallelOptions(), weights, seq)
    if ex is None:
        yield Runtime(model, weights=weights)
        return
    with ex:
        yield ex


def in_order(runner: Runtime | Executor, batches: Iterable[Feeds]) -> Iterator[Feeds]:
    if isinstance(runner, Executor):
        return runner.map(batches)
    return (runner.run(f) for f in batches)


def for_evaluate(runner: Runtime | Executor, data: Dataset, batch_size: int) -> Any:
    """What `evaluate` calls run() on: a streaming executor's outputs computed ahead."""
    if getattr(runner, "streams", False):
        return OrderedOutputs(runner.map(f for f, _ in data.batches(batch_size)))
    return runner


def ran(runner: Runtime | Executor) -> dict[str, Any]:
    return {"parallel": runner.describe()} if isinstance(runner, Executor) else {}
