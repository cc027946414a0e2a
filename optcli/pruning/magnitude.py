"""Magnitude pruning: zero the weights of smallest absolute value.

Han, Pool, Tran, Dally, "Learning both Weights and Connections for Efficient Neural Networks",
NeurIPS 2015. `scope: layer` prunes each layer to exactly `sparsity`; `scope: global` ranks all
selected weights together, so layers with many small weights lose more. With `threshold: t`
(instead of a sparsity) every weight with |w| < t is zeroed, whatever the scope.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def prune_layers(weights: list[np.ndarray], config: Any, inputs: Any,
                 rng: np.random.Generator) -> list[np.ndarray]:
    if getattr(config, "threshold", None) is not None:
        masks = [np.abs(w) >= config.threshold for w in weights]
    elif config.scope == "global":
        masks = global_masks([np.abs(w) for w in weights], config.sparsity)
    else:
        masks = [lowest_mask(np.abs(w), config.sparsity) for w in weights]
    return [np.where(keep, w, 0).astype(np.float32) for w, keep in zip(weights, masks)]


def lowest_mask(scores: np.ndarray, sparsity: float) -> np.ndarray:
    """Keep-mask dropping exactly round(sparsity * size) entries of lowest score (ties by
    position, via argpartition)."""
    k = int(round(sparsity * scores.size))
    keep = np.ones(scores.size, bool)
    if k:
        keep[np.argpartition(scores.ravel(), k - 1, kind="introselect")[:k]] = False
    return keep.reshape(scores.shape)


def global_masks(scores: list[np.ndarray], sparsity: float) -> list[np.ndarray]:
    """One ranking over all layers' scores; the k lowest anywhere are dropped."""
    keep = lowest_mask(np.concatenate([s.ravel() for s in scores]), sparsity)
    bounds = np.cumsum([0] + [s.size for s in scores])
    return [keep[a:b].reshape(s.shape) for a, b, s in zip(bounds[:-1], bounds[1:], scores)]
