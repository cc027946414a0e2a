"""Cross-parameter checks of the prune step, run before any weight is touched.

Each parameter is validated alone when the YAML is parsed (optcli/params.py); combinations
(threshold with sparsity, n/m with the method) and layer shapes (N:M needs inputs divisible by
M) can only be checked here, once the method and the selected layers are known.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from optcli.errors import StepError
from optcli.pruning import nm

NM_METHODS = ("nm", "wanda", "sparsegpt")       # methods that read n/m (N:M when m > 0)


def param_problem(config: Any) -> str | None:
    """What is wrong with the combination of prune parameters, or None. Run when the YAML is
    parsed (a ConfigError there) and again by the step."""
    default_sparsity = {f.name: f.default for f in dataclasses.fields(config)}["sparsity"]
    threshold = getattr(config, "threshold", None)
    if threshold is not None and config.method != "magnitude":
        return f"'threshold' applies to method magnitude only, not {config.method!r}"
    if threshold is not None and config.sparsity != default_sparsity:
        return "'threshold' and 'sparsity' are mutually exclusive; give one"
    n, m = getattr(config, "n", 0), getattr(config, "m", 0)
    if (n or m) and config.method not in NM_METHODS:
        return f"'n'/'m' apply to methods {', '.join(NM_METHODS)}, not {config.method!r}"
    if config.method == "nm":
        if not 0 < n < m:
            return f"method nm needs 0 < n < m, got n={n}, m={m}"
        if config.sparsity != default_sparsity:
            return "method nm prunes to 1 - n/m; do not give 'sparsity'"
    return None


def check_config(config: Any, layer_names: list[str], weights: list[np.ndarray]) -> None:
    """StepError naming the keys (or the layer) when the prune parameters do not fit."""
    problem = param_problem(config)
    if problem is not None:
        raise StepError(f"prune: {problem}")
    if config.method == "nm":
        for name, w in zip(layer_names, weights):
            nm.check_divisible(w, config.m, name)
