"""Gradual pruning: a block of steps run for several rounds at increasing sparsity.

    steps:
      - gradual:
          rounds: 4
          curve: cubic               # Zhu & Gupta 2017; or linear
          initial_sparsity: 0.0
          steps:                     # one round; every prune step's `sparsity` is the final one
            - prune: {method: magnitude, sparsity: 0.9, scope: global}
            - finetune: {...}        # recovery between rounds, once that step exists

Round r of R prunes to s_r = s_f + (s_i - s_f) * (1 - r / R)^3 (cubic: big cuts early, while
many redundant weights remain, small ones near the end; Zhu & Gupta, "To prune, or not to
prune", 2017), or s_i + (s_f - s_i) * r / R (linear). The last round reaches s_f exactly.
The block is expanded when the pipeline is parsed (config.py): every round's steps are
ordinary pipeline steps, validated, recorded and reported one by one. Without a recovery step
in between, magnitude rounds give exactly the one-shot result (weights already zero count
towards the sparsity and the ranking does not change), so the schedule pays off with a
calibrated method (SparseGPT re-solves each round) or, above all, with fine-tuning.
"""

from __future__ import annotations

from dataclasses import dataclass

from optcli.params import param

CURVES = ("cubic", "linear")


@dataclass(frozen=True)
class GradualConfig:
    rounds: int = param(4, "pruning rounds; the last reaches each prune step's sparsity",
                        check=lambda v: 1 <= v <= 100, check_doc="1 <= rounds <= 100")
    curve: str = param("cubic", "how sparsity grows over the rounds", choices=CURVES)
    initial_sparsity: float = param(0.0, "the sparsity the schedule starts from (round 0)",
                                    check=lambda v: 0.0 <= v < 1.0,
                                    check_doc="0 <= initial_sparsity < 1")
    steps: list = param(None, "the steps of one round: a list of {step_name: params} "
                        "(prune steps, and what runs between them)", required=True)


def sparsity_at(r: int, cfg: GradualConfig, final: float) -> float:
    """The sparsity round r (1..rounds) prunes to, on the way from initial to `final`."""
    frac = r / cfg.rounds
    s0 = cfg.initial_sparsity
    if cfg.curve == "cubic":
        return round(final + (s0 - final) * (1.0 - frac) ** 3, 6)
    return round(s0 + (final - s0) * frac, 6)


def schedule_problem(config) -> str | None:
    """Why a prune step cannot follow a sparsity schedule (None if it can)."""
    if config.threshold is not None:
        return "a gradual schedule needs 'sparsity', not 'threshold'"
    if config.method == "nm" or config.m > 0:
        return "N:M patterns are fixed; they cannot grow over rounds"
    return None
