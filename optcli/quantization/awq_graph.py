"""Where AWQ's input scaling 1/s goes in the graph (awq.py holds the math).

For each input value x whose readers got a scale s (weights already multiplied by s):
- fold: x is produced by a layernorm / rmsnorm whose output is read only by those layers (and
  is not a graph output) and whose weight/bias tensors no other node reads: the norm's weight
  and bias are divided by s (exactly AWQ's folding into the preceding norm);
- otherwise: a `mul` node `<first reader>.awq_scale` computing x * inv_s (a float32 [in] tensor
  `<x>.awq_inv_scale`) is inserted just before the first reader, and the readers read its
  output instead. This costs one elementwise product per call.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from optcli.formats import DenseTensor, StoredTensor
from optcli.graph import Model, Node

NORMS = ("layernorm", "rmsnorm")


def apply_input_scales(model: Model, tensors: dict[str, StoredTensor],
                       scales: dict[str, tuple[np.ndarray, list[str]]]) -> tuple[Model, list[str]]:
    """The model with 1/s applied to each input value in `scales` (value -> (s [in], names of
    the scaled layers reading it)), using the already-updated `tensors`; returns it and one
    note per value saying where 1/s went."""
    nodes = list(model.graph.nodes)
    tensors = dict(tensors)
    notes = []
    for value, (s, layers) in scales.items():
        readers = [n for n in nodes if n.name in layers]
        producer = next((n for n in nodes if value in n.outputs), None)
        if _foldable(model, nodes, producer, readers, value):
            for role in ("weight", "bias"):
                t = producer.inputs.get(role)
                if isinstance(t, str):
                    tensors[t] = DenseTensor((tensors[t].decode() / s).astype(np.float32))
            notes.append(f"awq: 1/s of '{value}' folded into {producer.op} '{producer.name}'")
            continue
        nodes = _insert_mul(nodes, tensors, value, s, readers)
        notes.append(f"awq: 1/s of '{value}' applied by a mul node before "
                     f"{', '.join(r.name for r in readers)}")
    graph = dataclasses.replace(model.graph, nodes=tuple(nodes))
    return model.replace(graph=graph, tensors=tensors), notes


def _foldable(model: Model, nodes: list[Node], producer: Node | None, readers: list[Node],
              value: str) -> bool:
    if producer is None or producer.op not in NORMS:
        return False
    if value in {vi.name for vi in model.graph.outputs}:
        return False
    if [n for n in nodes if value in n.input_names()] != readers:
        return False                                 # someone else reads the norm's output
    own = [t for t in (producer.inputs.get("weight"), producer.inputs.get("bias"))
           if isinstance(t, str)]
    return all(sum(t in n.input_names() for n in nodes) == 1 for t in own)


def _insert_mul(nodes: list[Node], tensors: dict[str, StoredTensor], value: str,
                s: np.ndarray, readers: list[Node]) -> list[Node]:
    """nodes with `x * (1/s)` computed before the first reader, readers rewired to it."""
    inv = f"{value}.awq_inv_scale"
    tensors[inv] = DenseTensor((1.0 / s).astype(np.float32))
    out = f"{value}.awq"
    mul = Node(f"{readers[0].name}.awq_scale", "mul", {"a": value, "b": inv}, (out,))
    first = nodes.index(readers[0])
    names = {r.name for r in readers}
    rewired = [dataclasses.replace(n, inputs={**n.inputs, "x": out}) if n.name in names else n
               for n in nodes]
    return rewired[:first] + [mul] + rewired[first:]

