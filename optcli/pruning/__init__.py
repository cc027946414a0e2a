"""Pruning methods: pure functions that choose which weights to zero (and, for SparseGPT,
how to update the rest). The `prune` step (optcli/steps/prune.py) walks the layers and
stores the result; each method module exposes

    prune_layers(weights: list[np.ndarray], config, inputs: list[LayerInputs] | None, rng)
        -> list[np.ndarray]          # the new dense weights, zeros where pruned

and METHODS maps the YAML `method:` name to it. `inputs` carries calibration statistics of
each layer's input (only methods listed in NEEDS_CALIBRATION get them).
"""

from optcli.pruning import magnitude, nm, random_keep, sparsegpt, wanda

METHODS = {
    "magnitude": magnitude.prune_layers,
    "random": random_keep.prune_layers,
    "nm": nm.prune_layers,
    "wanda": wanda.prune_layers,
    "sparsegpt": sparsegpt.prune_layers,
}

# Methods given `inputs`: one optcli.calibration.LayerInputs per weight, in order; the
# Hessian X^T X is accumulated only for those in NEEDS_HESSIAN.
NEEDS_CALIBRATION: set[str] = {"wanda", "sparsegpt"}
NEEDS_HESSIAN: set[str] = {"sparsegpt"}
