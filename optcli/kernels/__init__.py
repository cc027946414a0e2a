"""Kernels: `reference` (naive, obviously correct: the oracle) and `fast` (what runs).

Each table maps every op name in `optcli.ops.OPS` to `fn(**inputs, **attrs) -> np.ndarray`.
"""

from __future__ import annotations

from typing import Callable


def kernel_table(kind: str) -> dict[str, Callable]:
    if kind == "reference":
        from optcli.kernels.reference import REFERENCE
        return REFERENCE
    if kind == "fast":
        from optcli.kernels.fast import FAST
        return FAST
    raise ValueError(f"unknown kernel set {kind!r}; valid: fast, reference")
