"""Gradual pruning blocks: the schedule, their expansion and validation, and their result."""

from pathlib import Path

import numpy as np
import pytest

from optcli.config import parse_pipeline
from optcli.errors import ConfigError
from optcli.gradual import GradualConfig, sparsity_at
from optcli.pipeline import run_steps
from optcli.steps.base import StepContext
from tests.conftest import make_mlp


def _parse(text):
    return parse_pipeline(text, "p.yaml", Path("."))


BLOCK = """
steps:
  - gradual:
      rounds: 4
      {extra}
      steps:
        - prune: {{method: magnitude, sparsity: 0.8}}
        - quantize: {{bits: 8}}
"""


@pytest.mark.parametrize("curve", ["cubic", "linear"])
def test_the_schedule_rises_monotonically_to_the_final_sparsity(curve):
    cfg = GradualConfig(rounds=5, curve=curve, initial_sparsity=0.1, steps=[])
    s = [sparsity_at(r, cfg, 0.9) for r in range(0, 6)]
    assert s[0] == pytest.approx(0.1) and s[-1] == 0.9
    assert all(a < b for a, b in zip(s, s[1:]))
    if curve == "cubic":      # the biggest cut comes first (Zhu & Gupta 2017)
        steps = np.diff(s)
        assert all(a > b for a, b in zip(steps, steps[1:]))


def test_a_block_expands_into_rounds_of_its_steps():
    p = _parse(BLOCK.format(extra="curve: linear"))
    assert [(s.name, s.round) for s in p.steps] == [
        (name, f"{r}/4") for r in range(1, 5) for name in ("prune", "quantize")]
    assert [s.config.sparsity for s in p.steps if s.name == "prune"] == [0.2, 0.4, 0.6, 0.8]
    assert p.steps[0].path == "steps[0].gradual.steps[0].prune"


@pytest.mark.parametrize("text, message", [
    (BLOCK.format(extra="curv: cubic"), r"p.yaml:\d+: unknown key 'steps\[0\].gradual.curv'; "
                                        "did you mean 'curve'"),
    ("steps:\n  - gradual: {round: 3, steps: [{prune: {}}]}\n", "did you mean 'rounds'"),
    ("steps:\n  - gradual: {rounds: 2}\n", r"'steps\[0\].gradual' needs 'steps'"),
    ("steps:\n  - gradual: {steps: []}\n", "must be a non-empty list"),
    ("steps:\n  - gradual: {steps: [{quantize: {}}]}\n", "no prune step to schedule"),
    ("steps:\n  - gradual: {steps: [{prune: {threshold: 0.1}}]}\n", "not 'threshold'"),
    ("steps:\n  - gradual: {steps: [{prune: {method: nm, n: 2, m: 4}}]}\n", "N:M"),
    ("steps:\n  - gradual: {initial_sparsity: 0.5, steps: [{prune: {sparsity: 0.5}}]}\n",
     "must exceed initial_sparsity"),
    ("steps:\n  - gradual: {steps: [{gradual: {steps: []}}]}\n", "cannot nest"),
    ("steps:\n  - gradual: {steps: [{prun: {}}]}\n", "unknown step 'prun'"),
])
def test_bad_blocks_are_refused_with_their_path(text, message):
    with pytest.raises(ConfigError, match=message):
        _parse(text)


def test_gradual_magnitude_rounds_equal_one_shot_pruning_without_recovery():
    """Weights already zero count towards the sparsity, so the ranking never changes: a
    schedule only pays off with a recovery step (or a re-solving method) in between."""
    model = make_mlp()
    grad, records = run_steps(model, _parse(
        "steps:\n  - gradual: {rounds: 3, steps: [{prune: {sparsity: 0.75}}]}\n"), StepContext())
    once, _ = run_steps(model, _parse("steps:\n  - prune: {sparsity: 0.75}\n"), StepContext())
    assert [r.round for r in records] == ["1/3", "2/3", "3/3"]
    for name, t in once.tensors.items():
        np.testing.assert_array_equal(grad.tensors[name].decode(), t.decode())
    rounds = [s.get("round") for s in grad.provenance["steps"]]
    assert rounds == ["1/3", "2/3", "3/3"]
