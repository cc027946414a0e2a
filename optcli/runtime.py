"""Executes a model's graph on a batch with NumPy.

`Runtime(model, kernels="fast", weights="auto")` prepares an execution plan once, recorded in
`plan()` with the bytes each tensor keeps resident:
- dense tensors are used as they are;
- weights="auto" (fastest): every compressed tensor is decoded once into a float32 buffer, so
  compute runs at dense BLAS speed and resident memory is that of a float model;
- weights="compact" (smallest): compressed tensors stay in their stored form while the model
  runs. A sparse `linear` weight at density <= CSR_MAX_DENSITY runs as a CSR sparse-dense
  product (scipy.sparse) that reads only the nonzeros; every other one (int8 codes, denser
  sparse weights) is decoded just before the node that reads it and dropped after, which
  costs one decode per call.
Sparse kernels that beat dense ones (and an `auto` that picks them per layer from measured
break-even points) and packed low-bit kernels extend this plan in the pruning and
quantization issues.
Each node's kernel and resolved attributes are looked up once, and the last use of every value
is found so intermediates are freed as soon as possible. `kernels="reference"` runs the naive
oracle kernels and decodes every tensor up front: the tests' ground truth.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from optcli.errors import DataError
from optcli.formats import SparseTensor, StoredTensor
from optcli.graph import Model, ValueInfo
from optcli.kernels import kernel_table, sparse
from optcli.ops import OPS

# In compact mode a sparse linear weight at or below this density runs as CSR (it then reads
# ~1/10 of the dense bytes); denser ones are decoded per call. The pruning issue replaces this
# fixed point with break-even densities measured per layer size and batch.
CSR_MAX_DENSITY = 0.10
WEIGHT_POLICIES = ("auto", "compact")


@dataclass(frozen=True)
class _Step:
    name: str
    op: str
    fn: Callable[..., np.ndarray]
    inputs: dict[str, Any]
    attrs: dict[str, Any]
    output: str
    free: tuple[str, ...]        # values whose last use is this step
    decode: tuple[str, ...]      # roles whose tensor is decoded just for this call


class Runtime:
    def __init__(self, model: Model, kernels: str = "fast", weights: str = "auto"):
        if weights not in WEIGHT_POLICIES:
            raise ValueError(f"weights policy {weights!r}; valid: {', '.join(WEIGHT_POLICIES)}")
        self.model = model
        self.kernels, self.policy = kernels, weights
        self.forms: dict[str, str] = {}
        self.weights: dict[str, Any] = {}
        for name, t in model.tensors.items():
            self.forms[name] = self._choose_form(name, t)
            self.weights[name] = _prepare(t, self.forms[name])
        self.steps = self._schedule(kernel_table(kernels))

    def _choose_form(self, name: str, t: StoredTensor) -> str:
        if t.encoding == "dense":
            return "dense"
        if self.kernels == "reference" or self.policy == "auto":
            return "decoded"
        if (isinstance(t, SparseTensor) and sparse.available() and len(t.shape) == 2
                and t.nonzeros <= CSR_MAX_DENSITY * t.size and self._only_linear_weight(name)):
            return "csr"
        return "decode-per-call"

    def _only_linear_weight(self, name: str) -> bool:
        uses = [(n.op, role) for n in self.model.graph.nodes for role, v in n.inputs.items()
                if v == name]
        return bool(uses) and all(u == ("linear", "weight") for u in uses)

    def _schedule(self, table: dict[str, Callable]) -> list[_Step]:
        g = self.model.graph
        keep = {vi.name for vi in g.outputs} | set(self.model.tensors)
        last_use = {v: i for i, n in enumerate(g.nodes) for v in n.input_names()}
        steps = []
        for i, n in enumerate(g.nodes):
            free = tuple(v for v in set(n.input_names()) if last_use[v] == i and v not in keep)
            fn = table[n.op]
            if n.op == "linear" and self.forms.get(n.inputs["weight"]) == "csr":
                fn = sparse.linear_csr
            decode = tuple(r for r, v in n.inputs.items()
                           if isinstance(v, str) and self.forms.get(v) == "decode-per-call")
            steps.append(_Step(n.name, n.op, fn, n.inputs, OPS[n.op].resolve_attrs(n.attrs),
                               n.outputs[0], free, decode))
        return steps

    def run(self, feeds: dict[str, np.ndarray],
            profile: dict[str, float] | None = None) -> dict[str, np.ndarray]:
        """Run on `feeds` (graph input name -> array); returns graph output name -> array.
        With `profile`, each op's wall time (ms, decoding included) is added to profile[op]."""
        env: dict[str, Any] = dict(self.weights)
        for vi in self.model.graph.inputs:
            env[vi.name] = check_input(vi, feeds)
        for s in self.steps:
            t0 = time.perf_counter()
            args = {role: ([env[v] for v in val] if isinstance(val, list) else env[val])
                    for role, val in s.inputs.items()}
            for role in s.decode:
                args[role] = args[role].decode()
            try:
                env[s.output] = s.fn(**args, **s.attrs)
            except (ValueError, IndexError) as e:
                raise DataError(f"node '{s.name}' ({s.op}): {e}") from None
            if profile is not None:
                profile[s.op] = profile.get(s.op, 0.0) + (time.perf_counter() - t0) * 1000.0
            for v in s.free:
                env.pop(v, None)
        return {vi.name: env[vi.name] for vi in self.model.graph.outputs}

    def plan(self) -> list[dict[str, Any]]:
        """How each stored tensor is executed and the bytes it keeps resident."""
        return [{"tensor": name, "encoding": self.model.tensors[name].describe(),
                 "form": form, "resident_bytes": _resident_bytes(self.weights[name])}
                for name, form in self.forms.items()]

    def resident_bytes(self) -> int:
        return sum(_resident_bytes(w) for w in self.weights.values())


def _prepare(t: StoredTensor, form: str) -> Any:
    if form == "csr":
        return sparse.to_csr(t)
    if form == "decode-per-call":
        return t
    if form == "dense":
        return t.data if t.data.dtype != np.float16 else t.data.astype(np.float32)
    return np.ascontiguousarray(t.decode(), dtype=np.float32)     # "decoded"


def _resident_bytes(w: Any) -> int:
    if isinstance(w, np.ndarray):
        return w.nbytes
    if isinstance(w, StoredTensor):
        return w.nbytes
    return int(w.data.nbytes + w.indices.nbytes + w.indptr.nbytes)   # scipy CSR


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
