"""Architecture specs: a small YAML (or JSON) file that turns a PyTorch state dict into a graph.

A state dict holds weights but no architecture, so the user states it as a sequential list of
layers, each naming the state-dict keys it reads (see configs/arch/lenet5_torch.yaml):

    name: lenet5
    task: classification                 # or {kind: classification, labels: [...]}
    input: {name: image, shape: [batch, 1, 28, 28], meaning: image_nchw}
    layers:
      - conv2d: {name: conv1, weight: features.0.weight, bias: features.0.bias, padding: 2}
      - relu: {}
      - maxpool2d: {kernel: 2}
      - flatten: {}
      - linear: {name: fc1, weight: classifier.0.weight, bias: classifier.0.bias}
    output: {name: logits, meaning: logits}

A layer is any op of `optcli.ops` that reads one activation `x`: its weight roles (`weight`,
`bias`, `mean`, `var`) name state-dict keys, every other key is an op attribute, and `name`
(optional) names the node. Errors name the spec file, line and key path; a state-dict key that
is missing lists close matches; shapes are checked by a dry run at batch 1 with the reference
kernels, so a mismatch names the layer. State-dict keys no layer reads (except BatchNorm's
`num_batches_tracked` counters) are listed in `provenance.unused_state_dict_keys`.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import numpy as np

from optcli.builder import GraphBuilder
from optcli.errors import ConfigError, DataError, GraphError
from optcli.graph import TASKS, Model
from optcli.io import file_sha256
from optcli.ops import OPS, REQUIRED, OpSpec
from optcli.yamlsrc import load_yaml

TOP_KEYS = ("name", "task", "input", "layers", "output")
INPUT_KEYS = ("name", "shape", "meaning")
OUTPUT_KEYS = ("name", "meaning")
IGNORED_SUFFIXES = (".num_batches_tracked",)   # BatchNorm step counters: not used at inference


class _Spec:
    """The parsed spec file with its line marks; `fail` raises ConfigError at a key path."""

    def __init__(self, path: Path):
        self.path = Path(path)
        try:
            text = self.path.read_text()
        except OSError as e:
            raise ConfigError(f"{self.path}: cannot read architecture spec: {e.strerror}") from None
        self.raw, self.marks = load_yaml(text, str(self.path))

    def fail(self, key_path: str, msg: str) -> None:
        line = self.marks.get(key_path)
        where = f"{self.path}:{line}" if line else str(self.path)
        raise ConfigError(f"{where}: {key_path or '<top>'}: {msg}")

    def mapping(self, value: Any, key_path: str, allowed: tuple[str, ...]) -> dict:
        if not isinstance(value, dict):
            self.fail(key_path, "must be a mapping")
        for key in value:
            if key not in allowed:
                hint = difflib.get_close_matches(key, allowed, n=1)
                did = f"did you mean '{hint[0]}'? " if hint else ""
                self.fail(f"{key_path}.{key}" if key_path else key,
                          f"unknown key; {did}valid: {', '.join(allowed)}")
        return value


def import_torch(path: Path, arch: Path) -> Model:
    """A `Model` from a torch state dict `path` and the architecture spec `arch`."""
    from optcli.interop.torch_checkpoint import read_state_dict

    spec = _Spec(arch)
    top = spec.mapping(spec.raw, "", TOP_KEYS)
    for key in ("input", "layers", "output"):
        if key not in top:
            spec.fail(key, "missing (required)")
    state = read_state_dict(Path(path))
    b = GraphBuilder(str(top.get("name") or Path(path).stem), _task(spec, top.get("task")),
                     provenance={"source": "pytorch state dict", "file": Path(path).name,
                                 "input_sha256": file_sha256(Path(path)),
                                 "arch_spec": Path(arch).name})
    inp = _input(spec, top["input"], b)
    value, used, where = _layers(spec, top["layers"], b, state, Path(path), inp)
    out = spec.mapping(top["output"], "output", OUTPUT_KEYS)
    shape = _dry_run(spec, b, value, where)
    b.output(value, str(out.get("name", "output")), shape, meaning=str(out.get("meaning", "")))
    unused = sorted(k for k in state if k not in used and not k.endswith(IGNORED_SUFFIXES))
    b.provenance["unused_state_dict_keys"] = unused
    return b.build()


def _task(spec: _Spec, raw: Any) -> dict[str, Any]:
    task = {"kind": raw} if isinstance(raw, str) or raw is None else raw
    task = spec.mapping(task, "task", ("kind", "labels", "preprocessing"))
    task.setdefault("kind", "classification")
    if task["kind"] not in TASKS:
        spec.fail("task", f"kind {task['kind']!r} is not one of {', '.join(TASKS)}")
    return dict(task)


def _input(spec: _Spec, raw: Any, b: GraphBuilder) -> str:
    inp = spec.mapping(raw, "input", INPUT_KEYS)
    shape = inp.get("shape")
    if not (isinstance(shape, list) and shape and all(
            isinstance(d, str) or (isinstance(d, int) and not isinstance(d, bool) and d > 0)
            for d in shape)):
        spec.fail("input.shape", "must be a list of positive ints or symbols like 'batch'")
    return b.input(str(inp.get("name", "input")), shape, meaning=str(inp.get("meaning", "")))


def _layers(spec: _Spec, raw: Any, b: GraphBuilder, state: dict[str, np.ndarray],
            ckpt: Path, value: str) -> tuple[str, set[str], dict[str, str]]:
    """Append one node per layer; returns (last value, state keys read, node -> key path)."""
    if not isinstance(raw, list) or not raw:
        spec.fail("layers", "must be a non-empty list of layers")
    used: set[str] = set()
    where: dict[str, str] = {}
    for i, entry in enumerate(raw):
        kp = f"layers[{i}]"
        if not (isinstance(entry, dict) and len(entry) == 1):
            spec.fail(kp, "each layer is a mapping with one key, the op: '- relu: {}'")
        (op, params), = entry.items()
        opspec = _layer_op(spec, op, f"{kp}.{op}")
        params = spec.mapping(params if params is not None else {}, f"{kp}.{op}",
                              ("name",) + opspec.weights + tuple(opspec.attrs))
        kp = f"{kp}.{op}"
        inputs = {role: _weight(spec, b, state, ckpt, f"{kp}.{role}", params[role], used)
                  for role in opspec.weights if role in params}
        for role in opspec.inputs[1:]:
            if role not in inputs:
                spec.fail(kp, f"missing '{role}' (a state-dict key)")
        attrs = {k: v for k, v in params.items() if k in opspec.attrs}
        _check_attrs(spec, opspec, attrs, kp)
        name = params.get("name")
        if name is not None and (not isinstance(name, str) or name in where):
            spec.fail(f"{kp}.name", f"must be a unique string, got {name!r}")
        value = b.add(op, name=name, attrs=attrs, x=value, **inputs)
        where[b.nodes[-1].name] = kp
    return value, used, where


def _layer_op(spec: _Spec, op: str, kp: str) -> OpSpec:
    """The op spec of a sequential layer: reads one activation `x`, all else are weights."""
    sequential = sorted(n for n, s in OPS.items()
                        if s.inputs[:1] == ("x",) and set(s.roles) - {"x"} <= set(s.weights))
    if op not in sequential:
        hint = difflib.get_close_matches(op, sequential, n=1)
        did = f"did you mean '{hint[0]}'? " if hint else ""
        spec.fail(kp, f"'{op}' is not a sequential layer op; {did}valid: {', '.join(sequential)}")
    return OPS[op]


def _weight(spec: _Spec, b: GraphBuilder, state: dict[str, np.ndarray], ckpt: Path, kp: str,
            key: Any, used: set[str]) -> str:
    """Register state-dict `key` as a float32 tensor of the graph (once) and return its name."""
    if not isinstance(key, str):
        spec.fail(kp, f"must be a state-dict key (a string), got {key!r}")
    if key not in state:
        close = difflib.get_close_matches(key, list(state), n=3, cutoff=0.5)
        hint = f"; close matches: {', '.join(close)}" if close else ""
        spec.fail(kp, f"state-dict key '{key}' is not in {ckpt.name}{hint}")
    arr = state[key]
    if arr.dtype.kind != "f":
        spec.fail(kp, f"state-dict key '{key}' has dtype {arr.dtype}, expected a float tensor")
    if key not in b.tensors:
        b.weight(key, arr.astype(np.float32))
    used.add(key)
    return key


def _check_attrs(spec: _Spec, opspec: OpSpec, attrs: dict[str, Any], kp: str) -> None:
    for key, attr in opspec.attrs.items():
        if key not in attrs:
            if attr.default is REQUIRED:
                spec.fail(kp, f"missing '{key}'" + (f" ({attr.doc})" if attr.doc else ""))
            continue
        v = attrs[key]
        ok = isinstance(v, attr.types) and not (isinstance(v, bool) and bool not in attr.types)
        if not ok or (attr.check is not None and not attr.check(v)):
            spec.fail(f"{kp}.{key}", f"invalid value {v!r}" + (f" ({attr.doc})" if attr.doc
                                                                 else ""))


def _dry_run(spec: _Spec, b: GraphBuilder, value: str, where: dict[str, str]) -> list:
    """Run the layers once at batch 1 (reference kernels); returns the output shape.

    A shape mismatch between consecutive layers surfaces as a DataError from the node that
    reads the wrong shape; it is reported at that layer's key path in the spec.
    """
    from optcli.runtime import Runtime

    probe = GraphBuilder(b.name, b.task)
    probe.nodes, probe.inputs, probe.tensors = list(b.nodes), list(b.inputs), dict(b.tensors)
    vi = b.inputs[0]
    probe.outputs = []
    try:
        probe.output(value, value, ["batch"])
        model = probe.build()
        x = np.zeros([d if isinstance(d, int) else 1 for d in vi.shape], np.float32)
        (y,) = Runtime(model, "reference").run({vi.name: x}).values()
    except (DataError, GraphError) as e:
        msg = str(e)
        node = msg.split("'")[1] if msg.startswith("node '") else ""
        spec.fail(where.get(node, "layers"), f"layer '{node}' does not fit the previous "
                                             f"layer's output: {msg.split(': ', 1)[-1]}")
    symbolic = isinstance(vi.shape[0], str)
    return [vi.shape[0] if symbolic else int(y.shape[0]), *map(int, y.shape[1:])]
