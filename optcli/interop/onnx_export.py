"""Export an optcli model, float or compressed, to a standard ONNX graph (default opset 17).

    from optcli.io import load_model
    from optcli.interop.onnx_export import export_onnx
    import onnx
    onnx.save(export_onnx(load_model("lenet5.npz")), "lenet5.onnx")

Every op of `optcli.ops` lowers to standard ONNX ops (one small function per op in
`onnx_ops.py`); this module owns the bookkeeping: naming, constants, initializers, graph
inputs/outputs. Dense and float-sparse tensors become float32 initializers (`t.decode()`);
int8 tensors (quantized, or sparse with int8 values) stay int8 and reach their op through
DequantizeLinear (QDQ form, see `onnx_qdq.py`); integer dense tensors keep their dtype. Symbolic
dimensions ('batch', 'seq') become ONNX dim_params. The export is checked with
`onnx.checker.check_model` before it is returned.

`onnx` is an optional dependency and is imported only when an export is asked for.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from optcli.errors import InputError
from optcli.graph import Model, ValueInfo
from optcli.interop.onnx_ops import ONNX_OPS
from optcli.interop.onnx_qdq import dequantized, is_int8, quantized_activation
from optcli.ops import OPS

MIN_OPSET = 17           # LayerNormalization is a standard op from opset 17 on
DEFAULT_MAX_POSITIONS = 4096   # rows of the precomputed rotary cos/sin tables


def _onnx():
    try:
        import onnx
    except ImportError:
        raise InputError("ONNX export needs the 'onnx' extra: pip install 'optcli[onnx]'") from None
    return onnx


def export_onnx(model: Model, opset: int = 17,
                max_positions: int = DEFAULT_MAX_POSITIONS) -> Any:
    """The model as an `onnx.ModelProto`; raises InputError naming a node that cannot be mapped.

    `max_positions` bounds the sequence length of models that use rotary attention (their
    cos/sin tables are precomputed in float64 and stored as initializers of that many rows).
    """
    onnx = _onnx()
    if opset < MIN_OPSET:
        raise InputError(f"ONNX export needs opset >= {MIN_OPSET} (LayerNormalization), "
                         f"got {opset}")
    # entropy coding exists only on disk: export the form it decodes to (e.g. int8 -> QDQ)
    model = model.replace(tensors={k: t.resident() for k, t in model.tensors.items()})
    em = Emitter(model, opset, max_positions)
    for vi in model.graph.inputs:
        em.add_input(vi)
    for node in model.graph.nodes:
        fn = ONNX_OPS.get(node.op)
        if fn is None:
            raise InputError(f"node '{node.name}' ({node.op}): no ONNX mapping for this op")
        em.scope = node.name
        inputs = {role: em.name_of(v) for role, v in node.inputs.items()}
        attrs = OPS[node.op].resolve_attrs(node.attrs)
        quant = {k: attrs.pop(k) for k in list(attrs) if k.startswith("input_")}
        if quant:                          # W8A8: quantized input, then the float layer
            inputs["x"] = quantized_activation(em, inputs["x"], node.op, **quant)
        fn(em, node.outputs[0], **inputs, **attrs)
    for vi in model.graph.outputs:
        em.add_output(vi)
    proto = em.to_proto()
    onnx.checker.check_model(proto)
    return proto


class Emitter:
    """Collects ONNX nodes and initializers while the graph is walked in topological order.

    Value names are the optcli names; helper values get fresh names `<node>/<op>_<n>`.
    Initializers of stored tensors are added only when a node actually reads them.
    """

    def __init__(self, model: Model, opset: int, max_positions: int):
        self.onnx = _onnx()
        self.model, self.opset, self.max_positions = model, opset, max_positions
        self.nodes: list[Any] = []
        self.inputs: list[Any] = []
        self.outputs: list[Any] = []
        self.consts: dict[str, np.ndarray] = {}          # name -> array (new initializers)
        self._const_names: dict[tuple, str] = {}         # (dtype, shape, bytes) -> name
        self.alias: dict[str, str] = {}                  # optcli name -> ONNX name (casts)
        self.scope = "graph"
        self._decoded: dict[str, np.ndarray] = {}        # stored tensor name -> array
        self._dq: dict[tuple[str, bool], str] = {}       # (int8 tensor, transposed) -> value
        self._taken = set(model.tensors) | {vi.name for vi in model.graph.inputs}
        self._taken |= {o for n in model.graph.nodes for o in n.outputs}

    # ------------------------------------------------------------------ names and nodes
    def fresh(self, hint: str) -> str:
        base = f"{self.scope}/{hint}"
        name, i = base, 0
        while name in self._taken:
            i += 1
            name = f"{base}_{i}"
        self._taken.add(name)
        return name

    def op(self, op_type: str, *inputs: str, out: str | None = None, **attrs: Any) -> str:
        """Append one ONNX node reading `inputs`; returns its (single) output name."""
        inputs = tuple(self._float_weight(i) for i in inputs)
        out = out or self.fresh(op_type)
        name = self.fresh(f"{op_type}_node")
        self.nodes.append(self.onnx.helper.make_node(op_type, list(inputs), [out], name=name,
                                                     **attrs))
        return out

    def _float_weight(self, name: str, transpose: bool = False) -> str:
        """`name`, or for an int8 stored tensor the output of its DequantizeLinear (once)."""
        t = self.model.tensors.get(name)
        if t is None or not is_int8(t):
            return name
        if (name, transpose) not in self._dq:
            self._dq[name, transpose] = dequantized(self, name, transpose)
        return self._dq[name, transpose]

    def name_of(self, value: str | list[str]) -> str | list[str]:
        """The ONNX name of an optcli value (or list of values, for `concat`)."""
        if isinstance(value, list):
            return [self.alias.get(v, v) for v in value]
        return self.alias.get(value, value)

    # ------------------------------------------------------------------ constants
    def const(self, array: np.ndarray, hint: str = "const", key: Any = None) -> str:
        """An initializer holding `array`; identical constants (or equal `key`s) are stored once."""
        array = np.ascontiguousarray(array)
        key = key or (array.dtype.str, array.shape, array.tobytes())
        if key not in self._const_names:
            name = self.fresh(hint)
            self.consts[name] = array
            self._const_names[key] = name
        return self._const_names[key]

    def ints(self, *values: int) -> str:
        """A 1-D int64 constant (axes, shapes, slice bounds)."""
        return self.const(np.array(values, np.int64), "ints")

    def scalar(self, value: float) -> str:
        return self.const(np.array(value, np.float32), "scalar")

    def filled(self, shape: str, value: float) -> str:
        """A float32 tensor of runtime shape `shape` (a 1-D int64 value) filled with `value`."""
        fill = self.onnx.numpy_helper.from_array(np.array([value], np.float32))
        return self.op("ConstantOfShape", shape, value=fill)

    def to_float(self, x: str) -> str:
        return self.op("Cast", x, to=self.onnx.TensorProto.FLOAT)

    def transposed(self, name: str) -> str:
        """`name`.T: a transposed initializer for a stored tensor, else a Transpose node."""
        t = self.model.tensors.get(name)
        if t is not None and is_int8(t) and len(t.shape) == 2:
            return self._float_weight(name, transpose=True)
        if t is not None:
            return self.const(self.decoded(name).T, f"{name}.T", key=("transposed", name))
        return self.op("Transpose", name, perm=[1, 0])

    def reduce(self, op_type: str, x: str, axes: list[int], keepdims: int,
               out: str | None = None) -> str:
        """Reduce ops take `axes` as an input from opset 18 on (ReduceSum from 13)."""
        if op_type == "ReduceSum" or self.opset >= 18:
            return self.op(op_type, x, self.ints(*axes), out=out, keepdims=keepdims)
        return self.op(op_type, x, out=out, axes=axes, keepdims=keepdims)

    def decoded(self, name: str) -> np.ndarray:
        """A stored tensor as an array, decoded once."""
        if name not in self._decoded:
            self._decoded[name] = _decode(self.model.tensors[name])
        return self._decoded[name]

    # ------------------------------------------------------------------ graph boundary
    def add_input(self, vi: ValueInfo) -> None:
        """Graph inputs keep name and dtype; float16 inputs are cast to float32 for the math."""
        self.inputs.append(self._value_info(vi))
        if vi.dtype == "float16":
            self.alias[vi.name] = self.op("Cast", vi.name, to=self.onnx.TensorProto.FLOAT)

    def add_output(self, vi: ValueInfo) -> None:
        if vi.dtype == "float16":   # the math ran in float32: rename and cast back
            inner = self.fresh("float32")
            for n in self.nodes:
                n.output[:] = [inner if o == vi.name else o for o in n.output]
                n.input[:] = [inner if i == vi.name else i for i in n.input]
            self.op("Cast", inner, out=vi.name, to=self.onnx.TensorProto.FLOAT16)
        self.outputs.append(self._value_info(vi))

    def _value_info(self, vi: ValueInfo) -> Any:
        elem = self.onnx.helper.np_dtype_to_tensor_dtype(np.dtype(vi.dtype))
        return self.onnx.helper.make_tensor_value_info(vi.name, elem, list(vi.shape))

    # ------------------------------------------------------------------ shapes
    def static_shape(self, name: str) -> list[int | str | None]:
        """The shape ONNX shape inference gives `name` in the graph built so far.

        Large initializers are declared as typed inputs (no data) so the probe stays cheap;
        small ones (shape constants) keep their values so Reshape outputs can be inferred.
        """
        helper = self.onnx.helper
        inits, typed = [], []
        for key, arr in self._initializers(used_only=True).items():
            if arr.size <= 64:
                inits.append(self.onnx.numpy_helper.from_array(arr, key))
            else:
                elem = helper.np_dtype_to_tensor_dtype(arr.dtype)
                typed.append(helper.make_tensor_value_info(key, elem, list(arr.shape)))
        graph = helper.make_graph(self.nodes, "probe", self.inputs + typed, [], inits)
        probe = helper.make_model(graph, opset_imports=[helper.make_opsetid("", self.opset)])
        inferred = self.onnx.shape_inference.infer_shapes(probe)
        for vi in list(inferred.graph.value_info) + list(inferred.graph.input):
            if vi.name == name:
                return [d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
                        for d in vi.type.tensor_type.shape.dim]
        raise InputError(f"node '{self.scope}': cannot infer the shape of '{name}' for export")

    # ------------------------------------------------------------------ assembly
    def _initializers(self, used_only: bool) -> dict[str, np.ndarray]:
        """Stored tensors read by some node (decoded) plus the constants made so far."""
        used = {i for n in self.nodes for i in n.input}
        out = {k: self.decoded(k) for k in self.model.tensors if k in used}
        out.update(self.consts)
        return {k: a for k, a in out.items() if k in used or not used_only}

    def to_proto(self) -> Any:
        helper, numpy_helper = self.onnx.helper, self.onnx.numpy_helper
        inits = [numpy_helper.from_array(a, k)
                 for k, a in self._initializers(used_only=True).items()]
        graph = helper.make_graph(self.nodes, self.model.name, self.inputs, self.outputs, inits)
        # make_model_gen_version picks the oldest IR version that supports `opset`, so older
        # runtimes still load the file.
        proto = helper.make_model_gen_version(
            graph, opset_imports=[helper.make_opsetid("", self.opset)],
            producer_name="optcli")
        proto.doc_string = f"exported by optcli from model '{self.model.name}'"
        return proto


def _decode(t) -> np.ndarray:
    """Float tensors decode to float32; integer dense tensors (id tables) keep their dtype."""
    if t.encoding == "dense" and t.dtype != "float32":
        return np.ascontiguousarray(t.data)
    return np.ascontiguousarray(t.decode(), dtype=np.float32)
