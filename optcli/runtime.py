"""Executes a model's graph on a batch with NumPy.

`Runtime(model, kernels="fast")` prepares once: each stored tensor is turned into its execution
form (float32 arrays for BLAS), each node's kernel and resolved attributes are looked up, and
the last use of every value is found so intermediates are freed as soon as possible.
`kernels="reference"` runs the naive oracle kernels instead (the tests' ground truth).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from optcli.errors import DataError
from optcli.graph import Model, ValueInfo
from optcli.kernels import kernel_table
from optcli.ops import OPS


@dataclass(frozen=True)
class _Step:
    name: str
    op: str
    fn: Callable[..., np.ndarray]
    inputs: dict[str, Any]
    attrs: dict[str, Any]
    output: str
    free: tuple[str, ...]   # values whose last use is this step


class Runtime:
    def __init__(self, model: Model, kernels: str = "fast"):
        self.model = model
        table = kernel_table(kernels)
        self.weights = {name: _execution_form(t) for name, t in model.tensors.items()}
        self.steps = _schedule(model, table)

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run on `feeds` (graph input name -> array); returns graph output name -> array."""
        env: dict[str, Any] = dict(self.weights)
        for vi in self.model.graph.inputs:
            env[vi.name] = check_input(vi, feeds)
        for s in self.steps:
            args = {role: ([env[v] for v in val] if isinstance(val, list) else env[val])
                    for role, val in s.inputs.items()}
            try:
                env[s.output] = s.fn(**args, **s.attrs)
            except (ValueError, IndexError) as e:
                raise DataError(f"node '{s.name}' ({s.op}): {e}") from None
            for v in s.free:
                env.pop(v, None)
        return {vi.name: env[vi.name] for vi in self.model.graph.outputs}


def _execution_form(t) -> np.ndarray:
    """Float weights decode to float32 for BLAS; integer tables (ids) stay as they are."""
    if t.encoding == "dense" and t.dtype != "float32":
        return t.data
    return np.ascontiguousarray(t.decode(), dtype=np.float32)


def _schedule(model: Model, table: dict[str, Callable]) -> list[_Step]:
    keep = {vi.name for vi in model.graph.outputs} | set(model.tensors)
    last_use: dict[str, int] = {}
    for i, n in enumerate(model.graph.nodes):
        for v in n.input_names():
            last_use[v] = i
    steps = []
    for i, n in enumerate(model.graph.nodes):
        free = tuple(v for v in set(n.input_names()) if last_use[v] == i and v not in keep)
        steps.append(_Step(n.name, n.op, table[n.op], n.inputs,
                           OPS[n.op].resolve_attrs(n.attrs), n.outputs[0], free))
    return steps


def check_input(vi: ValueInfo, feeds: dict[str, np.ndarray]) -> np.ndarray:
    """The fed array for graph input `vi`, cast to its dtype, with rank/dims/NaN checked."""
    if vi.name not in feeds:
        raise DataError(f"missing model input '{vi.name}' (have: {', '.join(feeds) or 'none'})")
    a = np.asarray(feeds[vi.name])
    if a.ndim != len(vi.shape):
        raise DataError(f"input '{vi.name}': expected rank {len(vi.shape)} "
                        f"{list(vi.shape)}, got shape {list(a.shape)}")
    for i, (d, want) in enumerate(zip(a.shape, vi.shape)):
        if isinstance(want, int) and d != want:
            raise DataError(f"input '{vi.name}': dim {i} is {d}, expected {want} "
                            f"(shape {list(vi.shape)})")
    if vi.dtype.startswith("float"):
        if a.dtype.kind not in "fiu":
            raise DataError(f"input '{vi.name}': dtype {a.dtype} is not numeric")
        a = a.astype(vi.dtype, copy=False)
        if not np.isfinite(a).all():
            raise DataError(f"input '{vi.name}': contains NaN/Inf")
    else:
        if a.dtype.kind not in "iu":
            raise DataError(f"input '{vi.name}': expected integer ids, got {a.dtype}")
        a = a.astype(vi.dtype, copy=False)
    return a
