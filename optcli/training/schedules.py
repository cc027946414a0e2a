"""Learning-rate schedules: pure functions of the optimizer step, each after a linear warm-up.

    lr(step) = base * (step + 1) / warmup                         step < warmup
    then, with t = step - warmup and D = total - warmup decay steps:
      constant     base
      step         base * gamma^floor(t / step_size)
      exponential  base * gamma^(t / step_size)        (smooth: gamma per step_size steps)
      linear       base * (1 - t / D)                  (reaches 0 after the last step)
      cosine       base * (1 + cos(pi t / D)) / 2      (Loshchilov & Hutter, SGDR, ICLR 2017)
Warm-up (Goyal et al., "Accurate, Large Minibatch SGD", 2017) avoids large early updates
while Adam's moment estimates are still noisy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

SCHEDULES = ("constant", "step", "exponential", "linear", "cosine")


@dataclass(frozen=True)
class Schedule:
    kind: str = "constant"
    base: float = 1e-3
    total: int = 1                 # optimizer steps in the whole run
    warmup: int = 0
    step_size: int = 1             # step / exponential: steps per decay by gamma
    gamma: float = 0.1

    def __post_init__(self) -> None:
        if self.kind not in SCHEDULES:
            raise ValueError(f"schedule {self.kind!r}; valid: {', '.join(SCHEDULES)}")

    def lr(self, step: int) -> float:
        if step < self.warmup:
            return self.base * (step + 1) / self.warmup
        t, span = step - self.warmup, max(self.total - self.warmup, 1)
        if self.kind == "step":
            return self.base * self.gamma ** (t // max(self.step_size, 1))
        if self.kind == "exponential":
            return self.base * self.gamma ** (t / max(self.step_size, 1))
        if self.kind == "linear":
            return self.base * max(0.0, 1 - t / span)
        if self.kind == "cosine":
            return self.base * 0.5 * (1 + math.cos(math.pi * min(t / span, 1.0)))
        return self.base
