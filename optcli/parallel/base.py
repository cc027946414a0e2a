"""What every executor offers, so `run`, `eval` and `bench` treat them alike.

An executor has the Runtime's `run(feeds) -> outputs` (same outputs, to float tolerance) and
`plan()` (how each weight is held), plus `map(batches)` (outputs of many batches, in order;
the Dask executor keeps several in flight), `describe()` (the plan that ran, for the report)
and `close()`; it is a context manager.
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator

import numpy as np

from optcli.errors import InputError
from optcli.parallel.plan import ExecutionPlan
from optcli.runtime import Runtime

Feeds = dict[str, np.ndarray]


class Executor:
    plan_: ExecutionPlan
    runtime: Runtime | None = None        # the parent's Runtime, when there is one
    notes: tuple[str, ...] = ()

    def run(self, feeds: Feeds, profile: dict[str, float] | None = None) -> Feeds:
        raise NotImplementedError

    def map(self, batches: Iterable[Feeds]) -> Iterator[Feeds]:
        for feeds in batches:
            yield self.run(feeds)

    def plan(self) -> list[dict[str, Any]]:
        return self.runtime.plan() if self.runtime is not None else []

    def describe(self) -> dict[str, Any]:
        return {**self.plan_.to_json(), "notes": list(self.notes)}

    def close(self) -> None:
        pass

    def __enter__(self) -> "Executor":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def no_profile(profile: dict[str, float] | None, strategy: str) -> None:
    if profile is not None:
        raise InputError(f"--profile times ops in one process; it cannot be used with "
                         f"the {strategy} strategy")


class SerialExecutor(Executor):
    """One Runtime in this process, BLAS threads set by the plan."""

    def __init__(self, model, plan: ExecutionPlan, weights: str = "auto"):
        from optcli.parallel.blas import BlasLimit
        self.plan_ = plan
        self._limit = BlasLimit(plan.threads)
        self.runtime = Runtime(model, weights=weights)

    def run(self, feeds: Feeds, profile: dict[str, float] | None = None) -> Feeds:
        return self.runtime.run(feeds, profile=profile)

    def close(self) -> None:
        self._limit.restore()
