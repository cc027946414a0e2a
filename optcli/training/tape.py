"""A forward pass over the graph that records what backward needs, and the backward pass.

    tape = Tape(model, trainable={"fc1.weight", ...})
    outputs = tape.forward(feeds, weights)          # weights: tensor name -> float array
    grads = tape.backward({"logits": dloss_dlogits})  # tensor name -> dL/dtensor

Nodes run in the graph's topological order with the forwards of `grads.GRADS`, which compute
the reference kernels' results in the dtype of the weights (float32 to train, float64 for
gradient checks). Only values that depend on a trainable tensor are differentiated: the
backward of the first layer never computes a gradient for the image, and a frozen branch is
skipped entirely. Gradients of a value read by several nodes are summed (the multivariate
chain rule), so residual connections and tied weights just work.

A W8A8 layer (input_quant static or dynamic) reads its input fake-quantized exactly as the
runtime quantizes it (kernels/reference/w8a8.quantize_activation): the forward matches
inference, the weight gradient sees the quantized input, and the input's gradient passes
straight through the rounding (quantization-aware training of activations, Jacob et al. 2018).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from optcli.graph import Model, Node
from optcli.kernels.reference.w8a8 import quantize_activation
from optcli.ops import OPS
from optcli.runtime import check_input
from optcli.training.grads import GRADS, differentiable


def _names(value: Any) -> list[str]:
    return value if isinstance(value, list) else [value]


class Tape:
    def __init__(self, model: Model, trainable: set[str], dtype: type = np.float32):
        self.model, self.dtype = model, np.dtype(dtype)
        self.attrs = [OPS[n.op].resolve_attrs(n.attrs) for n in model.graph.nodes]
        self.needs = self._needs(set(trainable))
        self.saved: list[Any] = []

    def _needs(self, trainable: set[str]) -> list[frozenset[str]]:
        """Per node, the input roles whose gradient backward must compute."""
        live, out = set(trainable), []
        for n in self.model.graph.nodes:
            roles = frozenset(r for r, v in n.inputs.items() if differentiable(n.op, r)
                              and any(x in live for x in _names(v)))
            if roles:
                live.add(n.outputs[0])
            out.append(roles)
        return out

    def forward(self, feeds: dict[str, np.ndarray], weights: dict[str, np.ndarray],
                record: bool = True) -> dict[str, np.ndarray]:
        """Graph outputs for one batch; with `record`, keeps what `backward` needs."""
        env: dict[str, Any] = dict(weights)
        for vi in self.model.graph.inputs:
            a = check_input(vi, feeds)
            env[vi.name] = a.astype(self.dtype) if a.dtype.kind == "f" else a
        self.saved = []
        for n, attrs, needs in zip(self.model.graph.nodes, self.attrs, self.needs):
            inputs = {r: [env[x] for x in v] if isinstance(v, list) else env[v]
                      for r, v in n.inputs.items()}
            if attrs.get("input_quant", "none") != "none":
                inputs["x"] = fake_quant_input(n.op, inputs["x"], attrs)
            try:
                env[n.outputs[0]], saved = GRADS[n.op].forward(inputs, attrs)
            except (ValueError, IndexError) as e:
                raise ValueError(f"node '{n.name}' ({n.op}): {e}") from None
            self.saved.append(saved if record and needs else None)
        return {vi.name: env[vi.name] for vi in self.model.graph.outputs}

    def backward(self, douts: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """dL/d(tensor) for every trainable tensor reached from the output gradients."""
        grads: dict[str, np.ndarray] = dict(douts)
        nodes = self.model.graph.nodes
        for i in range(len(nodes) - 1, -1, -1):
            n, needs = nodes[i], self.needs[i]
            dy = grads.pop(n.outputs[0], None)
            if dy is None or not needs:
                continue
            got = GRADS[n.op].backward(dy, self.saved[i], needs)
            self.saved[i] = None                                   # free it as we go
            for role in needs:
                _accumulate(grads, n, role, got[role])
        return {k: v for k, v in grads.items() if k in self.model.tensors}


def _accumulate(grads: dict[str, np.ndarray], node: Node, role: str, g: Any) -> None:
    names = node.inputs[role]
    pieces = zip(names, g) if isinstance(names, list) else [(names, g)]
    for name, gi in pieces:
        grads[name] = gi if name not in grads else grads[name] + gi


def fake_quant_input(op: str, x: np.ndarray, attrs: dict[str, Any]) -> np.ndarray:
    """x as a W8A8 layer sees it: (codes - zero point) * scale, in x's dtype. Dynamic scales
    are per token for linear (x viewed [N, in]) and per sample for conv2d, as at inference."""
    mode, zp = attrs["input_quant"], attrs.get("input_zero_point") or 0
    xs = x.reshape(-1, x.shape[-1]) if op == "linear" else x
    q, scale = quantize_activation(xs, mode, attrs.get("input_scale"),
                                   zp if mode == "static" else 0)
    if mode == "static":
        q = q - np.float32(zp)
    return (q * scale).reshape(x.shape).astype(x.dtype)
