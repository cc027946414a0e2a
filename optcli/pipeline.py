"""A plain loop over the pipeline's steps: each step gets the previous model and returns a new
one plus a record; the loop times it, checks the result and notes it in the provenance."""

from __future__ import annotations

import time

import numpy as np

from optcli.config import Pipeline
from optcli.errors import OptcliError, StepError
from optcli.graph import Model, validate
from optcli.params import as_dict
from optcli.progress import NoProgress, Progress
from optcli.steps import STEPS
from optcli.steps.base import StepContext, StepRecord


def run_steps(model: Model, pipeline: Pipeline, context: StepContext,
              progress: Progress = NoProgress()) -> tuple[Model, list[StepRecord]]:
    records = []
    # Steps work on the executed form: an entropy-coded input (the `encode` step) is decoded.
    model = model.replace(tensors={k: t.resident() for k, t in model.tensors.items()})
    for spec in progress.track(pipeline.steps, len(pipeline.steps), "steps"):
        t0 = time.perf_counter()
        try:
            model, record = STEPS[spec.name].apply(model, spec.config, context)
        except OptcliError:
            raise
        except (ValueError, FloatingPointError, np.linalg.LinAlgError) as e:
            raise StepError(f"{spec.path}: {e}") from None
        record.seconds = time.perf_counter() - t0
        record.config = as_dict(spec.config)
        record.round = spec.round
        _check_result(model, spec.path)
        steps = list(model.provenance.get("steps", [])) + [
            {"step": spec.name, "config": record.config} | (
                {"round": spec.round} if spec.round else {})]
        model = model.replace(provenance={**model.provenance, "steps": steps})
        records.append(record)
    return model, records


def _check_result(model: Model, where: str) -> None:
    validate(model)
    for name, t in model.tensors.items():
        if any(a.dtype.kind == "f" and not np.isfinite(a).all() for a in t.arrays().values()):
            raise StepError(f"{where}: produced NaN/Inf in tensor '{name}'")
