"""Import an ONNX graph built from the ops optcli supports.

    from optcli.interop.onnx_import import import_onnx
    model = import_onnx(Path("lenet5.onnx"))

Each ONNX node is lowered by one small function of `onnx_import_ops.py` (MatMul/Gemm, Conv,
pooling, Flatten/Reshape/Transpose/Concat, activations, Softmax, Add/Mul, LayerNormalization,
BatchNormalization, Gather-as-embedding, Identity/Dropout). Two patterns are fused first:
MatMul by an initializer + Add of a bias -> one `linear`, and the erf GELU decomposition
(x * 0.5 * (1 + erf(x / sqrt 2)), as torch and optcli export it) -> one `gelu`. Initializers
become stored tensors; `Constant` nodes become constants. Every node that cannot be mapped is
listed, by op type and node name, in ONE InputError. Symbolic or unknown dimensions become
symbols ('batch' for the first, the ONNX dim_param when it has one).

`onnx` is an optional dependency, imported only when an import is asked for.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from optcli.builder import GraphBuilder
from optcli.errors import InputError, ModelFormatError
from optcli.graph import Model
from optcli.interop.onnx_import_ops import IMPORT_OPS, Unsupported
from optcli.interop.onnx_patterns import fuse_patterns
from optcli.io import file_sha256

_DTYPES = {1: "float32", 10: "float16", 7: "int64", 6: "int32"}   # ONNX elem type -> dtype
_SAFE = re.compile(r"[^A-Za-z0-9_.\-]")


def _onnx() -> Any:
    try:
        import onnx
    except ImportError:
        raise InputError("ONNX import needs the 'onnx' extra: pip install 'optcli[onnx]'") from None
    return onnx


def import_onnx(path: Path) -> Model:
    """An optcli `Model` from the ONNX file `path`; InputError lists every unmappable node."""
    onnx, path = _onnx(), Path(path)
    try:
        proto = onnx.load(str(path))
    except Exception as e:        # protobuf DecodeError, truncated file, ...
        raise ModelFormatError(f"{path}: not a readable ONNX model ({type(e).__name__}: "
                               f"{str(e)[:80]})") from None
    try:
        proto = onnx.shape_inference.infer_shapes(proto)
    except Exception:             # inference is only used for output shapes; keep going
        pass
    imp = OnnxImporter(onnx, proto, path)
    return imp.run()


class OnnxImporter:
    """Walks the ONNX graph in order, lowering each node into a `GraphBuilder`."""

    def __init__(self, onnx: Any, proto: Any, path: Path):
        self.onnx, self.proto, self.path = onnx, proto, path
        g = proto.graph
        self.opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")),
                          1)
        self.consts: dict[str, np.ndarray] = {
            t.name: onnx.numpy_helper.to_array(t) for t in g.initializer}
        self.names: dict[str, str] = {}          # ONNX value name -> optcli value name
        self._used: set[str] = set()             # value and tensor names
        self._node_names: set[str] = set()
        self.b = GraphBuilder(_SAFE.sub("_", g.name or path.stem) or "onnx",
                              task={"kind": "regression"},
                              provenance={"source": "onnx", "file": path.name,
                                          "input_sha256": file_sha256(path),
                                          "producer": proto.producer_name})
        self.consumers: dict[str, list[int]] = {}
        for i, n in enumerate(g.node):
            for v in n.input:
                self.consumers.setdefault(v, []).append(i)

    # ------------------------------------------------------------------ naming
    def unique(self, hint: str, nodes: bool = False) -> str:
        """A fresh sanitized name (value/tensor names and node names are separate spaces)."""
        used = self._node_names if nodes else self._used
        base = _SAFE.sub("_", hint).strip("_") or "v"
        name, i = base, 0
        while name in used:
            i += 1
            name = f"{base}_{i}"
        used.add(name)
        return name

    def node_name(self, node: Any, index: int) -> str:
        return node.name or f"node_{index}"

    # ------------------------------------------------------------------ values
    def const(self, name: str) -> np.ndarray | None:
        return self.consts.get(name) if name else None

    def value(self, name: str) -> str:
        """The optcli value for ONNX value `name`; a constant becomes a stored tensor."""
        if name in self.names:
            return self.names[name]
        if name in self.consts:
            return self.weight(name, self.consts[name])
        raise Unsupported(f"input '{name}' is not produced by a supported node")

    def weight(self, onnx_name: str, array: np.ndarray, key: str = "") -> str:
        """Register `array` as a stored tensor (once per (onnx_name, key)); returns its name."""
        k = f"{onnx_name}#{key}"
        if k not in self.names:
            a = np.asarray(array)
            if a.dtype.kind == "f" and a.dtype != np.float16:
                a = a.astype(np.float32)
            elif a.dtype.kind in "iub":
                a = a.astype(np.int64)
            name = self.unique(onnx_name[:-2] if onnx_name.endswith(".T") else onnx_name)
            self.b.weight(name, np.ascontiguousarray(a))
            self.names[k] = name
        return self.names[k]

    def emit(self, op: str, onnx_out: str, node_name: str, attrs: dict | None = None,
             **inputs: Any) -> str:
        """Append one optcli node writing the ONNX value `onnx_out` (or a fresh helper value)."""
        out = self.unique(onnx_out or f"{node_name}_{op}")
        self.b.add(op, name=self.unique(node_name if onnx_out else f"{node_name}_{op}", True),
                   attrs=attrs, out=out, **inputs)
        if onnx_out:
            self.names[onnx_out] = out
        return out

    def alias(self, onnx_out: str, value: str) -> None:
        self.names[onnx_out] = value

    # ------------------------------------------------------------------ the walk
    def run(self) -> Model:
        g = self.proto.graph
        for vi in g.input:
            if vi.name not in self.consts:
                self._add_input(vi)
        plan = fuse_patterns(self, list(g.node))
        bad = [f"{n.op_type} ({self.node_name(n, i)})" for i, n in enumerate(g.node)
               if i not in plan.skip and i not in plan.fused and n.op_type not in IMPORT_OPS
               and n.op_type != "Constant"]
        if not bad:
            bad = self._lower_all(list(g.node), plan)
        if bad:
            raise InputError(f"{self.path}: unsupported ONNX nodes: {', '.join(bad)}")
        for vi in g.output:
            self._add_output(vi)
        return self.b.build()

    def _lower_all(self, nodes: list[Any], plan: Any) -> list[str]:
        bad = []
        for i, n in enumerate(nodes):
            if i in plan.skip:
                continue
            name = self.node_name(n, i)
            try:
                if i in plan.fused:
                    plan.fused[i](self, name)
                elif n.op_type == "Constant":
                    self.consts[n.output[0]] = _constant_value(self.onnx, n)
                else:
                    IMPORT_OPS[n.op_type](self, n, name)
            except Unsupported as e:
                bad.append(f"{n.op_type} ({name}: {e})")
                for o in n.output:
                    self.names.setdefault(o, self.unique(o))
        return bad

    def _add_input(self, vi: Any) -> None:
        t = vi.type.tensor_type
        dtype = _DTYPES.get(t.elem_type)
        if dtype is None:
            raise InputError(f"{self.path}: graph input '{vi.name}' has ONNX element type "
                             f"{t.elem_type}; supported: float32, float16, int64, int32")
        shape = _dims(t.shape.dim)
        meaning = "image_nchw" if len(shape) == 4 and dtype.startswith("float") else (
            "token_ids" if dtype.startswith("int") else "")
        self.names[vi.name] = self.b.input(self.unique(vi.name), shape, dtype, meaning)
        self._used.add(vi.name)

    def _add_output(self, vi: Any) -> None:
        if vi.name not in self.names or vi.name in self.consts:
            raise InputError(f"{self.path}: graph output '{vi.name}' is not computed by a node")
        t = vi.type.tensor_type
        value = self.names[vi.name]
        produced = {o for n in self.b.nodes for o in n.outputs}
        if value not in produced or any(o.name == value for o in self.b.outputs):
            value = self.b.add("reshape", attrs={"shape": [0] * max(len(t.shape.dim), 1)},
                               x=value, name=self.unique(f"{vi.name}_out", True),
                               out=self.unique(f"{vi.name}_out"))   # an alias of the input
        dtype = _DTYPES.get(t.elem_type, "float32")
        self.b.output(value, value, _dims(t.shape.dim), dtype)


def _dims(dims: Any) -> list[int | str]:
    """ONNX dims as optcli shape entries: ints, else dim_param, else 'batch' / 'dim<i>'."""
    out: list[int | str] = []
    for i, d in enumerate(dims):
        if d.HasField("dim_value") and d.dim_value > 0:
            out.append(int(d.dim_value))
        else:
            out.append(d.dim_param or ("batch" if i == 0 else f"dim{i}"))
    return out


def _constant_value(onnx: Any, node: Any) -> np.ndarray:
    for a in node.attribute:
        if a.name == "value":
            return onnx.numpy_helper.to_array(a.t)
        if a.name in ("value_float", "value_int"):
            return np.array(onnx.helper.get_attribute_value(a),
                            np.float32 if a.name == "value_float" else np.int64)
        if a.name in ("value_floats", "value_ints"):
            return np.array(onnx.helper.get_attribute_value(a),
                            np.float32 if a.name == "value_floats" else np.int64)
    raise Unsupported("Constant without a tensor/float/int value")
