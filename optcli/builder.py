"""A small programmatic way to build a `Model`: used by the sample-model scripts, the tests and
the importers. Each `add` call appends one node and returns its output value name.

    b = GraphBuilder("mlp", task={"kind": "classification"})
    x = b.input("image", ["batch", 1, 28, 28], meaning="image_nchw")
    h = b.add("flatten", x=x)
    h = b.add("linear", x=h, weight=b.weight("fc1.weight", w1), bias=b.weight("fc1.bias", b1),
              name="fc1")
    b.output(b.add("relu", x=h), "logits", ["batch", 10], meaning="logits")
    model = b.build()
"""

from __future__ import annotations

from typing import Any

import numpy as np

from optcli.formats import DenseTensor, StoredTensor
from optcli.graph import Graph, Model, Node, ValueInfo, validate


class GraphBuilder:
    def __init__(self, name: str, task: dict[str, Any], provenance: dict[str, Any] | None = None,
                 extra: dict[str, Any] | None = None):
        self.name, self.task = name, task
        self.provenance = provenance or {}
        self.extra = extra or {}
        self.nodes: list[Node] = []
        self.inputs: list[ValueInfo] = []
        self.outputs: list[ValueInfo] = []
        self.tensors: dict[str, StoredTensor] = {}
        self._count: dict[str, int] = {}

    def input(self, name: str, shape: list, dtype: str = "float32", meaning: str = "") -> str:
        self.inputs.append(ValueInfo(name, tuple(shape), dtype, meaning))
        return name

    def weight(self, name: str, array: np.ndarray | StoredTensor) -> str:
        if name in self.tensors:
            raise ValueError(f"duplicate tensor {name}")
        self.tensors[name] = (array if isinstance(array, StoredTensor)
                              else DenseTensor(np.ascontiguousarray(array)))
        return name

    def add(self, op: str, name: str | None = None, attrs: dict[str, Any] | None = None,
            out: str | None = None, **inputs: Any) -> str:
        """Append node `op` reading `inputs` (role=value name); returns the output name."""
        if name is None:
            self._count[op] = self._count.get(op, 0) + 1
            name = f"{op}_{self._count[op]}"
        out = out or name
        self.nodes.append(Node(name, op, {k: v for k, v in inputs.items() if v is not None},
                               (out,), dict(attrs or {})))
        return out

    def output(self, value: str, name: str, shape: list, dtype: str = "float32",
               meaning: str = "") -> None:
        """Declare `value` a graph output under `name` (renaming the producing node's output)."""
        if value != name:
            for i, n in enumerate(self.nodes):
                if value in n.outputs:
                    self.nodes[i] = Node(n.name, n.op, n.inputs, (name,), n.attrs)
                    break
            else:
                raise ValueError(f"{value} is not a node output")
        self.outputs.append(ValueInfo(name, tuple(shape), dtype, meaning))

    def build(self) -> Model:
        m = Model(self.name, Graph(tuple(self.nodes), tuple(self.inputs), tuple(self.outputs)),
                  dict(self.tensors), self.task, self.provenance, self.extra)
        validate(m)
        return m
