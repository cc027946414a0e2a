"""Pruning methods: pure functions that choose which weights to zero (and, for SparseGPT,
how to update the rest). The `prune` step (optcli/steps/prune.py) walks the layers and
stores the result; each method module exposes

    prune_layers(weights: list[np.ndarray], config, inputs: LayerInputs | None, rng)
        -> list[np.ndarray]          # the new dense weights, zeros where pruned

and METHODS maps the YAML `method:` name to it. `inputs` carries calibration statistics of
each layer's input (only methods listed in NEEDS_CALIBRATION get them).
"""

from optcli.pruning import magnitude

METHODS = {
    "magnitude": magnitude.prune_layers,
}

NEEDS_CALIBRATION: set[str] = set()
