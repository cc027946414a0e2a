"""Report objects returned by the library; `render.py` turns them into rich tables or JSON.

The JSON form of a compress report (schema documented in README.md) is `to_dict()`:
size.{before_bytes, after_bytes, ratio, memory_*, params, nonzeros_*}, accuracy (or null),
latency.{batch, before_ms, after_ms, speedup, before, after}, steps, layers, gates, passed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

REPORT_SCHEMA_VERSION = 1


@dataclass
class CompressReport:
    input: str
    output: str
    config: str
    seed: int
    size: dict[str, Any]
    layers: list[dict[str, Any]]
    steps: list[dict[str, Any]]
    accuracy: dict[str, Any] | None
    latency: dict[str, Any]
    gates: list[dict[str, Any]] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(g["passed"] for g in self.gates)

    def to_dict(self) -> dict[str, Any]:
        return {"schema": REPORT_SCHEMA_VERSION, "kind": "compress", "input": self.input,
                "output": self.output, "config": self.config, "seed": self.seed,
                "size": self.size, "accuracy": self.accuracy, "latency": self.latency,
                "steps": self.steps, "layers": self.layers, "gates": self.gates,
                "passed": self.passed}
