"""The prune step: zero weights of the selected layers and store them sparse.

The method (optcli/pruning/) decides which weights go:
- magnitude: smallest |w| (Han et al., NeurIPS 2015), per layer or global; or every
  |w| < `threshold` instead of a sparsity.
- random: a uniformly random (1 - sparsity) of each layer, seeded from the pipeline seed: the
  baseline every method must beat (Frankle et al., ICLR 2021).
- nm: N:M, the n largest |w| in every m consecutive inputs of each row (2:4: Mishra et al.
  2021); conv weights are grouped along C*kh*kw.
- wanda: smallest |w| * ||x_j||_2 per output row, from calibration activations (Sun, Liu,
  Bair, Kolter, ICLR 2024); N:M when m > 0.
- sparsegpt: OBS mask selection and reconstruction of the kept weights from the calibration
  Hessian X^T X, blockwise with `damping` and `block_size` (Frantar & Alistarh, ICML 2023);
  N:M when m > 0.
wanda and sparsegpt need a `calibration:` section, prune linear layers only (exclude conv
layers) and statistics are computed once per step, on the step's input model.

    calibration: {data: calib.npz, samples: 128}
    steps:
      - prune: {method: magnitude, sparsity: 0.9, scope: global, exclude: [fc3]}
      - prune: {method: nm, n: 2, m: 4}
      - prune: {method: sparsegpt, sparsity: 0.5, damping: 0.01, block_size: 128}

Guards (any method): no layer keeps fewer than `min_keep` weights (it gets back its largest
|w|), and a layer emptied by global ranking or a threshold keeps them too unless
`allow_layer_removal: true`.

Weights already zero count towards the sparsity. The pruned tensor is stored in the sparse
encoding (csr, 4-bit gaps or bitmask, whichever is smallest); a symmetric per-output-channel
int8 tensor stays int8 (its codes are pruned, its scales kept).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from optcli.calibration import LayerInputs, layer_inputs
from optcli.errors import StepError
from optcli.formats import QuantizedTensor, SparseTensor, StoredTensor
from optcli.graph import Model, Node
from optcli.params import param
from optcli.pruning import METHODS, NEEDS_CALIBRATION, NEEDS_HESSIAN
from optcli.pruning.checks import check_config, param_problem
from optcli.pruning.guards import keep_floor
from optcli.steps.base import StepContext, StepRecord, input_groups, select_layers

DESCRIPTION = ("Zero weights (magnitude per layer or global, random, N:M, Wanda, SparseGPT) "
               "and store them sparse.")


@dataclass(frozen=True)
class Config:
    method: str = param("magnitude", "pruning criterion", choices=tuple(METHODS))
    sparsity: float = param(0.5, "fraction of each selected weight tensor set to zero",
                            check=lambda v: 0.0 <= v < 1.0, check_doc="0 <= sparsity < 1")
    scope: str = param("layer", "rank weights per layer or across all selected layers",
                       choices=("layer", "global"))
    layers: list = param(["*"], "glob patterns of layer (node) names to prune")
    exclude: list = param([], "glob patterns of layer names to leave alone")
    n: int = param(0, "N of N:M: weights kept per group (method nm; wanda/sparsegpt when m > 0)",
                   check=lambda v: v >= 0, check_doc=">= 0")
    m: int = param(0, "M of N:M: group size along the input dimension (0: unstructured)",
                   check=lambda v: v >= 0, check_doc=">= 0")
    threshold: float | None = param(None, "magnitude only: zero every |w| < threshold "
                                    "(instead of a sparsity)", type=float,
                                    check=lambda v: v >= 0, check_doc=">= 0")
    min_keep: int = param(1, "no layer keeps fewer than this many weights",
                          check=lambda v: v >= 0, check_doc=">= 0")
    allow_layer_removal: bool = param(False, "let global ranking or a threshold empty a "
                                      "layer entirely (min_keep then not applied to it)")
    damping: float = param(0.01, "sparsegpt: ridge added to the Hessian diagonal, as a "
                           "fraction of its mean (x10 up to 3 times if still singular)",
                           check=lambda v: v > 0, check_doc="> 0")
    block_size: int = param(128, "sparsegpt: columns pruned and updated together (lazy "
                            "batch updates between blocks)", check=lambda v: v >= 1,
                            check_doc=">= 1")
    sequential: bool = param(False, "wanda/sparsegpt: calibrate the layers reading each input "
                             "on the model pruned so far (one calibration pass per input), not "
                             "all on the dense model; on SmolLM2 it did worse "
                             "(benchmarks/README.md)")


def check(config: Config) -> str | None:
    """Problems with the combination of parameters, found when the YAML is parsed."""
    if config.sequential and (config.method not in NEEDS_CALIBRATION
                              or config.scope != "layer"):
        return "sequential applies to calibrated methods (wanda, sparsegpt) with scope: layer"
    return param_problem(config)


def needs_calibration(config: Config) -> bool:
    return config.method in NEEDS_CALIBRATION


def apply(model: Model, config: Config, context: StepContext) -> tuple[Model, StepRecord]:
    nodes = select_layers(model, config.layers, config.exclude)
    if not (config.sequential and context.calibration is not None):
        return _prune(model, nodes, config, context)
    groups = input_groups(nodes)
    record = StepRecord("prune", {})
    for group in groups:                # each calibrated on the model pruned so far
        model, part = _prune(model, group, config, context)
        record.layers += part.layers
        record.notes += part.notes
    record.notes.append(f"sequential: {len(groups)} calibration passes, each through the "
                        "model pruned so far")
    return model, record


def _prune(model: Model, nodes: list[Node], config: Config,
           context: StepContext) -> tuple[Model, StepRecord]:
    names = [n.inputs["weight"] for n in nodes]
    weights = [model.tensors[t].decode() for t in names]
    check_config(config, [n.name for n in nodes], weights)
    inputs = _calibration_stats(model, nodes, config, context)
    pruned = METHODS[config.method](weights, config, inputs, context.rng())
    pruned = [keep_floor(w, p, config.min_keep, config.allow_layer_removal)
              for w, p in zip(weights, pruned)]
    tensors = dict(model.tensors)
    record = StepRecord("prune", {})
    for node, name, w in zip(nodes, names, pruned):
        old = model.tensors[name]
        tensors[name] = _store_pruned(old, w, w != 0)
        if isinstance(old, QuantizedTensor) and old.packed:
            record.notes.append(f"{node.name}: {old.describe()} codes stored as float values "
                                "(sparse layers keep per-row int8 at most); quantize after "
                                "pruning to keep low-bit codes")
        record.layers.append({
            "layer": node.name, "tensor": name,
            "sparsity_before": round(1 - old.nonzeros / old.size, 6),
            "sparsity_after": round(1 - tensors[name].nonzeros / old.size, 6),
            "encoding": tensors[name].describe(),
            "bytes_before": old.nbytes, "bytes_after": tensors[name].nbytes})
    return model.replace(tensors=tensors), record


def _calibration_stats(model: Model, nodes: list[Node], config: Config,
                       context: StepContext) -> list[LayerInputs] | None:
    """Per-layer input statistics (in the order of `nodes`) for methods that need them."""
    if config.method not in NEEDS_CALIBRATION:
        return None
    if context.calibration is None:
        raise StepError(f"method '{config.method}' needs a calibration: section in the pipeline")
    stats = layer_inputs(model, nodes, context.calibration(),
                         hessian=config.method in NEEDS_HESSIAN)
    return [stats[n.name] for n in nodes]


def _store_pruned(old: StoredTensor, w: np.ndarray, keep: np.ndarray) -> StoredTensor:
    if (isinstance(old, QuantizedTensor) and not old.packed and old.zero_point is None
            and old.axis == 0 and len(old.shape) >= 1):
        codes = np.where(keep, old.codes, 0).astype(np.int8)
        sparse = SparseTensor.from_dense(codes.astype(np.float32))
        return sparse.with_values(sparse.values.astype(np.int8), old.scale.copy())
    if isinstance(old, SparseTensor) and old.scale is not None:
        scale = old.scale.reshape((-1,) + (1,) * (w.ndim - 1))
        codes = np.where(keep, np.rint(w / scale), 0).astype(np.float32)
        sparse = SparseTensor.from_dense(codes)
        return sparse.with_values(sparse.values.astype(np.int8), old.scale.copy())
    return SparseTensor.from_dense(np.where(keep, w, 0).astype(np.float32))
