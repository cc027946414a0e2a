"""One or more small float64 cases per op of the op table, for the gradient checks."""

from __future__ import annotations

import numpy as np


def _r(rng, *shape):
    return rng.standard_normal(shape)


def op_cases(rng: np.random.Generator) -> dict[str, list[tuple[dict, dict]]]:
    """op -> [(inputs, attrs)]: attrs as a node would hold them (defaults filled later)."""
    r = lambda *s: _r(rng, *s)  # noqa: E731
    ids = rng.integers(0, 7, (2, 5))
    mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    qkv = {"q": r(2, 5, 8), "k": r(2, 5, 8), "v": r(2, 5, 8)}
    gqa = {"q": r(2, 5, 8), "k": r(2, 5, 4), "v": r(2, 5, 6)}
    return {
        "linear": [({"x": r(3, 2, 5), "weight": r(4, 5), "bias": r(4)}, {}),
                   ({"x": r(3, 5), "weight": r(4, 5)}, {})],
        "conv2d": [({"x": r(2, 3, 6, 5), "weight": r(4, 3, 3, 2), "bias": r(4)},
                    {"padding": 1}),
                   ({"x": r(2, 4, 7, 7), "weight": r(6, 2, 3, 3)},
                    {"stride": [2, 1], "padding": [1, 2], "dilation": 2, "groups": 2})],
        "maxpool2d": [({"x": r(2, 3, 6, 6)}, {"kernel": 2}),
                      ({"x": r(2, 2, 7, 6)}, {"kernel": 3, "stride": 2, "padding": 1})],
        "avgpool2d": [({"x": r(2, 3, 6, 6)}, {"kernel": 2}),
                      ({"x": r(2, 2, 7, 6)}, {"kernel": [3, 2], "stride": 2, "padding": 1}),
                      ({"x": r(2, 2, 7, 6)}, {"kernel": 3, "stride": 2, "padding": 1,
                                              "count_include_pad": False})],
        "global_avgpool": [({"x": r(2, 3, 4, 5)}, {})],
        "flatten": [({"x": r(2, 3, 4)}, {}), ({"x": r(2, 3, 4)}, {"axis": 2})],
        "reshape": [({"x": r(2, 3, 4)}, {"shape": [0, -1, 2]})],
        "transpose": [({"x": r(2, 3, 4)}, {"perm": [2, 0, 1]})],
        "concat": [({"xs": [r(2, 3), r(2, 4), r(2, 1)]}, {})],
        "relu": [({"x": r(3, 4)}, {})],
        "gelu": [({"x": r(3, 4)}, {}), ({"x": r(3, 4)}, {"approximate": "tanh"})],
        "silu": [({"x": r(3, 4)}, {})],
        "tanh": [({"x": r(3, 4)}, {})],
        "sigmoid": [({"x": 4 * r(3, 4)}, {})],
        "softmax": [({"x": r(3, 4)}, {}), ({"x": r(3, 4, 2)}, {"axis": 1})],
        "add": [({"a": r(3, 4), "b": r(4)}, {}), ({"a": r(3, 1, 2), "b": r(4, 1)}, {})],
        "mul": [({"a": r(3, 4), "b": r(1, 4)}, {}), ({"a": r(2, 1), "b": r(3, 2, 5)}, {})],
        "layernorm": [({"x": r(2, 3, 6), "weight": r(6), "bias": r(6)}, {}),
                      ({"x": r(4, 5), "weight": r(5)}, {"eps": 1e-3})],
        "rmsnorm": [({"x": r(2, 3, 6), "weight": r(6)}, {})],
        "batchnorm": [({"x": r(2, 3, 4, 4), "weight": r(3), "bias": r(3), "mean": r(3),
                        "var": 1 + rng.random(3)}, {}),
                      ({"x": r(5, 3), "weight": r(3), "bias": r(3), "mean": r(3),
                        "var": 1 + rng.random(3)}, {"eps": 1e-3})],
        "embedding": [({"ids": ids, "weight": r(7, 4)}, {})],
        "positions": [({"ids": ids}, {"offset": 3})],
        "attention": [
            (dict(qkv), {"num_heads": 2}),
            (dict(qkv, mask=mask), {"num_heads": 2, "causal": True}),
            (dict(qkv), {"num_heads": 2, "causal": True, "rope": "half", "scale": 0.7}),
            (dict(qkv, mask=mask), {"num_heads": 4, "rope": "interleaved", "rope_base": 100.0}),
            (dict(gqa), {"num_heads": 4, "num_kv_heads": 2, "causal": True, "rope": "half"}),
            ({"q": r(2, 5, 8), "k": r(2, 5, 2), "v": r(2, 5, 3), "mask": mask},
             {"num_heads": 4, "num_kv_heads": 1}),
            ({"q": r(2, 3, 8), "k": r(2, 5, 8), "v": r(2, 5, 8), "mask": mask},
             {"num_heads": 2})],
        "meanpool": [({"x": r(2, 5, 3)}, {}), ({"x": r(2, 5, 3), "mask": mask}, {})],
        "l2normalize": [({"x": r(3, 4)}, {}), ({"x": 1e-3 * r(2, 3)}, {"eps": 0.1})],
    }
