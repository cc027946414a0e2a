"""Executes a model's graph on a batch with NumPy.

`Runtime(model, kernels="fast", weights="auto")` prepares an execution plan once, recorded in
`plan()` with the bytes each tensor keeps resident:
- dense tensors are used as they are;
- weights="auto" (fastest): a sparse `linear` weight runs as a CSR sparse-dense product
  (scipy.sparse, reads only the nonzeros) where the break-even densities measured on this
  machine (kernels/breakeven.py) say CSR beats dense BLAS at batch 1 AND at batch 256, so it is
  never the slower choice whatever the batch; every other compressed tensor is decoded once
  into a float32 buffer and runs at dense BLAS speed;
- weights="compact" (smallest): compressed tensors stay in their stored form while the model
  runs. A sparse `linear` weight runs as CSR where CSR beats dense at batch 1 OR 256 (the
  alternative, decoding per call, is slower than dense anyway); a quantized `linear` weight
  runs packed (below); every other one (quantized conv weights, denser sparse weights) is
  decoded just before the node that reads it and dropped after, one decode per call.
A quantized `linear` weight may run "packed": its codes stay packed and a packed kernel
(kernels/quantized: numba, or tiled NumPy decode + BLAS) decodes what each call needs, always
under weights="compact", under "auto" where kernels/quantized/decision.py measured it faster
than float32 at batch 1 and 256. A quantized `embedding` table runs packed under both policies:
each call decodes only the rows its ids name (kernels/quantized/gather.py).
The plan records each choice ("csr", "decoded", "decode-per-call", "packed"); the weight of a
W8A8 layer (input_quant set, ops.py) is "int8-codes" under every policy: its int8 codes as exact
float32 integers, read by the W8A8 kernels (kernels/w8a8.py), or for a linear layer with the
fast kernels and onnxruntime installed, an int8 MatMulInteger session holding the int8 codes
(kernels/w8a8_ort.py: the same exact sums, several times faster).
Each node's kernel and resolved attributes are looked up once, and the last use of every value
is found so intermediates are freed as soon as possible. `kernels="reference"` runs the naive
oracle kernels and decodes every tensor up front: the tests' ground truth.

With fast kernels the schedule also fuses chains such as conv2d -> relu -> maxpool2d and
linear -> gelu into one step (`kernels/fast/fused.py`; a step's op is then "conv2d+relu+..."),
binds each step's weights and attributes once (`kernels.bind`), and keeps freed buffers in the
process (`kernels/fast/memory.py`): at batch 1 a whole LeNet runs in well under 0.1 ms, so the
Python around each kernel call counts as much as the kernels do. Every run returns fresh
arrays: nothing a caller holds is reused by a later run.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from optcli.errors import DataError
from optcli.formats import SparseTensor, StoredTensor
from optcli.graph import Model, Node, ValueInfo
from optcli.kernels import bind, kernel_table, sparse, w8a8_ort
from optcli.kernels import quantized as packed
from optcli.kernels.breakeven import csr_is_faster
from optcli.kernels.quantized.decision import packed_is_faster
from optcli.kernels.threads import blas_threads
from optcli.kernels.w8a8 import Int8Codes, int8_code_weights, quantized_input, w8a8_kernel
from optcli.kernels.w8a8_ort import OrtInt8Linear
from optcli.ops import OPS

WEIGHT_POLICIES = ("auto", "compact")
TRANSPOSE_DENSE_MAX_BYTES = 128 << 20
_PACKED_USES = {("linear", "weight"), ("embedding", "weight")}
_FINITE_SUM_MIN = 4096      # inputs from this size take a SIMD sum, not a dot (_all_finite)


@dataclass(frozen=True)
class _Step:
    name: str                    # a fused step joins its nodes' names and ops with '+'
    op: str
    fn: Callable[..., np.ndarray]
    inputs: dict[str, Any]
    attrs: dict[str, Any]
    output: str
    free: tuple[str, ...]        # values whose last use is this step
    decode: tuple[str, ...]      # roles whose tensor is decoded just for this call
    parts: tuple["_Step", ...] = ()   # a fused step's unfused steps (what `profile` times)


class Runtime:
    def __init__(self, model: Model, kernels: str = "fast", weights: str = "auto"):
        if weights not in WEIGHT_POLICIES:
            raise ValueError(f"weights policy {weights!r}; valid: {', '.join(WEIGHT_POLICIES)}")
        self.model = model
        self.kernels, self.policy = kernels, weights
        self.forms: dict[str, str] = {}
        self.weights: dict[str, Any] = {}
        self._dense_bytes = sum(t.nbytes for t in model.tensors.values() if t.encoding == "dense")
        self._int8_codes = int8_code_weights(model)          # weights of W8A8 layers
        self._readers: dict[str, set[tuple[str, str]]] = {}  # value -> {(op, role)} reading it
        for n in model.graph.nodes:
            for role, v in n.inputs.items():
                if isinstance(v, str):
                    self._readers.setdefault(v, set()).add((n.op, role))
        for name, stored in model.tensors.items():
            t = stored.resident()
            self.forms[name] = self._choose_form(name, t)
            self.weights[name] = self._load(name, t)
        if kernels == "fast":
            from optcli.kernels.fast.memory import keep_freed_memory
            keep_freed_memory()
        keep = {vi.name for vi in model.graph.outputs} | set(model.tensors)
        self.steps = self._schedule(kernel_table(kernels), keep)
        flat = _with_free([p for s in self.steps for p in (s.parts or (s,))], keep)
        self._calls = [self._bind(s) for s in self.steps]
        self._timed_calls = [self._bind(s) for s in flat]

    def _choose_form(self, name: str, t: StoredTensor) -> str:
        if name in self._int8_codes:         # W8A8 layers read codes, not floats (kernels/w8a8)
            return "int8-codes"
        if t.encoding == "dense":
            return "dense"
        if self.kernels == "reference":
            return "decoded"
        rule = all if self.policy == "auto" else any         # see the module docstring
        if (isinstance(t, SparseTensor) and sparse.available() and len(t.shape) == 2
                and csr_is_faster(t.rows, t.cols, t.nonzeros / t.size, rule)
                and self._only_linear_weight(name)):
            return "csr"
        if self._packable(name, t):
            return "packed"
        return "decoded" if self.policy == "auto" else "decode-per-call"

    def _packable(self, name: str, t: StoredTensor) -> bool:
        """A quantized weight read only as a `linear` weight or an `embedding` table, with a
        packed layout (kernels/quantized). A table read by embeddings only is always packed
        (a gather decodes just the rows it reads: no speed to lose); one a linear reads is
        packed always in compact, in auto only where it was measured faster than float32 at
        batch 1 and 256 for its size, width and backend (kernels/quantized/decision.py)."""
        uses = self._uses(name)
        if t.encoding != "quantized" or not uses or not uses <= _PACKED_USES:
            return False
        w = packed.from_tensor(t)
        if w is None:
            return False
        return (("linear", "weight") not in uses or self.policy == "compact"
                or packed_is_faster(*w.shape, w.bits, packed.default_backend()))

    def _uses(self, name: str) -> set[tuple[str, str]]:
        """(op, role) of every node input that reads the tensor `name`."""
        return self._readers.get(name, set())

    def _only_linear_weight(self, name: str) -> bool:
        return self._uses(name) == {("linear", "weight")}

    def _load(self, name: str, t: StoredTensor) -> Any:
        """The tensor as the kernels read it. Fast auto mode keeps linear weights [out, in] as
        the transposed view of an [in, out] C-order copy: OpenBLAS sgemm runs 5-14% faster
        with that operand in C order (BERT-sized layers at batch 1), values are unchanged.
        A decoded tensor is a fresh buffer anyway; a dense one would exist twice (model and
        runtime), so dense weights are re-laid out only in models small enough that this does
        not matter (TRANSPOSE_DENSE_MAX_BYTES)."""
        if self.forms[name] == "int8-codes" and self._int8_on_ort(name):
            return OrtInt8Linear(t, blas_threads())
        w = _prepare(t, self.forms[name])
        relayout = self.forms[name] == "decoded" or self._dense_bytes <= TRANSPOSE_DENSE_MAX_BYTES
        if (self.kernels == "fast" and self.policy == "auto" and isinstance(w, np.ndarray)
                and w.ndim == 2 and relayout and self._only_linear_weight(name)):
            return np.ascontiguousarray(w.T).T
        return w

    def _int8_on_ort(self, name: str) -> bool:
        """A W8A8 linear weight runs on onnxruntime's int8 GEMM when it is installed (fast
        kernels; the same exact sums as the NumPy tier, kernels/w8a8_ort.py)."""
        return (self.kernels == "fast" and w8a8_ort.available()
                and self._only_linear_weight(name)
                and self.model.tensors[name].shape[-1] <= w8a8_ort.K_MAX)

    def _schedule(self, table: dict[str, Callable], keep: set[str]) -> list[_Step]:
        """One step per node, or per fused chain of nodes (fast kernels only)."""
        nodes = self.model.graph.nodes
        groups = [([i], None) for i in range(len(nodes))]
        if self.kernels == "fast":
            from optcli.kernels.fast.fused import find_chains
            groups = find_chains(nodes, keep, set(self.model.tensors),
                                 lambda i: self._kernel(table, nodes[i]) is table[nodes[i].op])
        steps = []
        for chain, fusion in groups:
            parts = tuple(self._step(n.name, n.op, self._kernel(table, n), n.inputs,
                                     OPS[n.op].resolve_attrs(n.attrs), n.outputs[0])
                          for n in (nodes[i] for i in chain))
            steps.append(parts[0] if fusion is None else self._step(
                "+".join(p.name for p in parts), "+".join(p.op for p in parts), fusion.fn,
                fusion.inputs([p.inputs for p in parts]), fusion.attrs([p.attrs for p in parts]),
                parts[-1].output, parts))
        return _with_free(steps, keep)

    def _kernel(self, table: dict[str, Callable], n: Node) -> Callable:
        if quantized_input(n):
            return w8a8_kernel(self.kernels, n.op)
        if n.op == "linear" and self.forms.get(n.inputs["weight"]) == "csr":
            return sparse.linear_csr
        if n.op == "linear" and self.forms.get(n.inputs["weight"]) == "packed":
            return packed.linear_packed
        if n.op == "embedding" and self.forms.get(n.inputs["weight"]) == "packed":
            return packed.embedding_packed
        return table[n.op]

    def _step(self, name: str, op: str, fn: Callable, inputs: dict[str, Any],
              attrs: dict[str, Any], output: str, parts: tuple[_Step, ...] = ()) -> _Step:
        """A step; the roles whose stored tensor is decoded per call are found here."""
        decode = tuple(r for r, v in inputs.items()
                       if isinstance(v, str) and self.forms.get(v) == "decode-per-call")
        return _Step(name, op, fn, inputs, attrs, output, (), decode, parts)

    def _bind(self, s: _Step) -> tuple:
        """(step, call(env) -> output, output name, values to free), for `_execute`."""
        return s, bind(s.fn, s.inputs, s.attrs, self.weights, s.decode), s.output, s.free

    def run(self, feeds: dict[str, np.ndarray],
            profile: dict[str, float] | None = None) -> dict[str, np.ndarray]:
        """Run on `feeds` (graph input name -> array); returns graph output name -> array.
        With `profile`, each op's wall time (ms, decoding included) is added to profile[op];
        fused steps then run as their unfused parts, so every op type keeps its own figure
        (a profiled run can take a little longer than a plain one)."""
        env: dict[str, Any] = {vi.name: check_input(vi, feeds) for vi in self.model.graph.inputs}
        _execute(self._calls if profile is None else self._timed_calls, env, profile)
        return {vi.name: env[vi.name] if vi.name in env else self.weights[vi.name]
                for vi in self.model.graph.outputs}

    def plan(self) -> list[dict[str, Any]]:
        """How each stored tensor is executed and the bytes it keeps resident."""
        return [{"tensor": name, "encoding": self.model.tensors[name].resident().describe(),
                 "form": form, "resident_bytes": _resident_bytes(self.weights[name])}
                for name, form in self.forms.items()]

    def resident_bytes(self) -> int:
        return sum(_resident_bytes(w) for w in self.weights.values())


def _prepare(t: StoredTensor, form: str) -> Any:
    if form == "csr":
        return sparse.to_csr(t)
    if form == "packed":                  # codes stay packed; numba compiles here, not in runs
        packed.warm_up(packed.default_backend())
        return packed.from_tensor(t)
    if form == "int8-codes":
        return Int8Codes(t)
    if form == "decode-per-call":
        return t
    if form == "dense":
        return t.data if t.data.dtype != np.float16 else t.data.astype(np.float32)
    return np.ascontiguousarray(t.decode(), dtype=np.float32)     # "decoded"


def _resident_bytes(w: Any) -> int:
    return int(w.nbytes)          # ndarray, StoredTensor or CsrWeight


def _with_free(steps: list[_Step], keep: set[str]) -> list[_Step]:
    """The steps with `free` set: the values (not in `keep`) whose last reader each one is."""
    names = [[x for v in s.inputs.values() for x in (v if isinstance(v, list) else [v])]
             for s in steps]
    last_use = {v: i for i, vs in enumerate(names) for v in vs}
    return [dataclasses.replace(s, free=tuple(v for v in dict.fromkeys(vs)
                                              if last_use[v] == i and v not in keep))
            for i, (s, vs) in enumerate(zip(steps, names))]


def _execute(calls: list[tuple], env: dict[str, Any], profile: dict[str, float] | None) -> None:
    """Run bound steps over `env` (value name -> array), timing each op into `profile`."""
    s = None
    try:
        if profile is None:
            for s, call, out, free in calls:
                env[out] = call(env)
                for v in free:
                    del env[v]
            return
        for s, call, out, free in calls:
            t0 = time.perf_counter()
            env[out] = call(env)
            for v in free:
                del env[v]
            profile[s.op] = profile.get(s.op, 0.0) + (time.perf_counter() - t0) * 1000.0
    except (ValueError, IndexError) as e:
        raise DataError(f"node '{s.name}' ({s.op}): {e}") from None


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
        if not _all_finite(a):
            raise DataError(f"input '{vi.name}': contains NaN/Inf")
    else:
        if a.dtype.kind not in "iu":
            raise DataError(f"input '{vi.name}': expected integer ids, got {a.dtype}")
        a = a.astype(vi.dtype, copy=False)
    return a


def _all_finite(a: np.ndarray) -> bool:
    """No NaN or Inf in a. A contiguous float input first takes one reduction, which NaN and
    Inf make non-finite: a dot with itself when small (one BLAS call, half the cost of
    isfinite(a).all(), which writes a bool array), an einsum sum when large (SIMD, 3x cheaper;
    a BLAS dot that long could go to a second thread). A finite result proves the input
    finite; a non-finite one may also be an overflow of finite values, so only then are the
    elements checked one by one."""
    if a.flags.c_contiguous and a.dtype == np.float32 and a.size:
        flat = a.reshape(-1)
        total = np.dot(flat, flat) if a.size < _FINITE_SUM_MIN else np.einsum("i->", flat)
        if math.isfinite(total):                # math: 4x cheaper than a NumPy scalar ufunc
            return True
    return bool(np.isfinite(a).all())
