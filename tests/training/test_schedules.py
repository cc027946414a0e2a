"""Learning-rate schedules: warm-up, end points and shapes."""

from __future__ import annotations

import math

import pytest

from optcli.training.schedules import SCHEDULES, Schedule


@pytest.mark.parametrize("kind", SCHEDULES)
def test_warmup_rises_linearly_to_base(kind):
    s = Schedule(kind, base=0.1, total=100, warmup=10, step_size=5, gamma=0.5)
    assert [s.lr(i) for i in range(3)] == pytest.approx([0.01, 0.02, 0.03])
    assert s.lr(10) == pytest.approx(0.1)


def test_decay_shapes():
    kw = dict(base=1.0, total=110, warmup=10, step_size=20, gamma=0.5)
    assert Schedule("constant", **kw).lr(109) == 1.0
    assert Schedule("step", **kw).lr(10 + 39) == pytest.approx(0.5)
    assert Schedule("step", **kw).lr(10 + 40) == pytest.approx(0.25)
    assert Schedule("exponential", **kw).lr(10 + 10) == pytest.approx(math.sqrt(0.5))
    assert Schedule("linear", **kw).lr(10 + 50) == pytest.approx(0.5)
    assert Schedule("cosine", **kw).lr(10 + 50) == pytest.approx(0.5)
    assert Schedule("cosine", **kw).lr(110) == pytest.approx(0.0)
    assert Schedule("linear", **kw).lr(500) == 0.0


def test_unknown_schedule_is_refused():
    with pytest.raises(ValueError, match="valid"):
        Schedule("triangle")
