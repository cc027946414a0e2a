"""Timing one side of a comparison alone, in a fresh interpreter (not a benchmark itself).

Interleaving sides call by call in one process lets one side's leftovers slow the other:
after a float32 product OpenBLAS's threads keep spinning on the other core. `median_ms`
runs `setup` (Python source that must define a no-argument callable `f`) in a new process
with `benchmarks/` and the repository on sys.path, warms `f` up, times `repeats` calls and
returns the median in milliseconds.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
TIMING = """
import sys, time
import numpy as np
sys.path.insert(0, {here!r})
sys.path.insert(0, {root!r})
{setup}
for _ in range(10):
    f()
ts = []
for _ in range({repeats}):
    t = time.perf_counter()
    f()
    ts.append(time.perf_counter() - t)
print(np.median(ts) * 1e3)
"""


def median_ms(setup: str, repeats: int) -> float:
    code = TIMING.format(here=str(HERE), root=str(HERE.parent), setup=setup, repeats=repeats)
    return float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                check=True).stdout)
