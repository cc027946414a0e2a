"""Torch layers as optcli nodes, shared by the LeNet and charlm exports.

Each helper adds one node named `name` with its tensors `{name}.weight` / `{name}.bias` (float32,
copied out of torch) and returns the node's output name, so layers chain like function calls.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from optcli.builder import GraphBuilder


def np32(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy().astype(np.float32)


def add_linear(b: GraphBuilder, x: str, name: str, m: nn.Linear) -> str:
    return b.add("linear", name=name, x=x, weight=b.weight(f"{name}.weight", np32(m.weight)),
                 bias=b.weight(f"{name}.bias", np32(m.bias)))


def add_conv(b: GraphBuilder, x: str, name: str, m: nn.Conv2d) -> str:
    return b.add("conv2d", name=name, x=x, attrs={"padding": m.padding[0]},
                 weight=b.weight(f"{name}.weight", np32(m.weight)),
                 bias=b.weight(f"{name}.bias", np32(m.bias)))


def add_layernorm(b: GraphBuilder, x: str, name: str, m: nn.LayerNorm) -> str:
    return b.add("layernorm", name=name, x=x, attrs={"eps": m.eps},
                 weight=b.weight(f"{name}.weight", np32(m.weight)),
                 bias=b.weight(f"{name}.bias", np32(m.bias)))
