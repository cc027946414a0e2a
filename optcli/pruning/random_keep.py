"""Random pruning: the baseline every other method must beat.

Each selected layer keeps a uniformly random set of exactly round((1 - sparsity) * size)
weights (scope is ignored: a random global ranking would only add noise to the per-layer
counts). The `rng` is the step's, seeded from the pipeline seed, so the same seed gives the
same masks; Frankle et al. ("Pruning Neural Networks at Initialization: Why Are We Missing
the Mark?", ICLR 2021) use it as the control for every criterion.

    steps:
      - prune: {method: random, sparsity: 0.9}
"""

from __future__ import annotations

from typing import Any

import numpy as np


def prune_layers(weights: list[np.ndarray], config: Any, inputs: Any,
                 rng: np.random.Generator) -> list[np.ndarray]:
    return [np.where(random_mask(w.shape, config.sparsity, rng), w, 0).astype(np.float32)
            for w in weights]


def random_mask(shape: tuple[int, ...], sparsity: float, rng: np.random.Generator) -> np.ndarray:
    """Keep-mask of `shape` dropping exactly round(sparsity * size) uniformly chosen entries."""
    size = int(np.prod(shape))
    keep = np.ones(size, bool)
    keep[rng.permutation(size)[:int(round(sparsity * size))]] = False
    return keep.reshape(shape)
