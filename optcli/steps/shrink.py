"""The shrink step: structured pruning that physically removes units, so layers get smaller
and faster while staying dense.

A unit is an output neuron of a `linear` (a row of weight [out, in]) or an output filter of a
`conv2d` (weight [O, C, kh, kw]); in a gated FFN (LLaMA's down(silu(gate(x)) * up(x))) a unit is
one channel of gate and up together. Units are ranked by the L1 or L2 norm of their weights
(bias not included) and the lowest round(sparsity * out) go, as in Li et al., "Pruning Filters
for Efficient ConvNets", ICLR 2017. Every consumer loses the matching input columns (for a
flatten after a conv, each removed channel's H*W block) or input channels; batchnorm entries
on the way go too.

A layer is only shrunk when its units end in linear/conv inputs, through activations,
batchnorm, pools, flatten or a gate `mul`. If they reach anything else (a residual add,
attention, a norm over the features, concat, reshape, a graph output) the layer is skipped and
a note says why; the final layer is therefore never shrunk.

With `heads` > 0, whole attention heads go first (Michel, Levy, Neubig, "Are Sixteen Heads
Really Better than One?", NeurIPS 2019; see `optcli/pruning/heads.py`): per attention whose
q/k/v come straight from linears and whose output goes straight into one linear o, all four
selected, the round(heads * kv_heads) kv groups (a kv head with its query heads; without
grouped KV, one query head) whose o-projection input columns have the smallest `norm` go, at
least one kept. q/k/v rows and o columns shrink and num_heads/num_kv_heads drop; other
attentions are skipped with a note. The units pass then still skips q/k/v (they feed attention).

The shrunk model computes exactly what the dense model computes with the removed rows and bias
entries, and the removed heads' o-projection input columns, set to zero (a removed unit that is
not zero after its activation, e.g. sigmoid(0), is folded into the consumer's bias). Touched
tensors are stored dense; a quantized or sparse one is decoded first (noted).

    steps:
      - shrink: {sparsity: 0.5, norm: l1, layers: [fc1, fc2]}
      - shrink: {sparsity: 0.0, heads: 0.25}      # a quarter of each attention's heads
"""

from __future__ import annotations

from dataclasses import dataclass

from optcli.graph import Model, validate
from optcli.params import param
from optcli.pruning.heads import find_heads, group_scores, groups_to_remove, remove_heads
from optcli.pruning.structured import (
    NotShrinkable,
    find_group,
    shrink,
    unit_scores,
    units_to_remove,
)
from optcli.steps.base import StepContext, StepRecord, select_layers

DESCRIPTION = ("Remove whole neurons, filters, FFN channels and attention heads with the smallest "
               "weight norms; consumers shrink too, the result stays dense.")


@dataclass(frozen=True)
class Config:
    sparsity: float = param(0.5, "fraction of each selected layer's units removed",
                            check=lambda v: 0.0 <= v < 1.0, check_doc="0 <= sparsity < 1")
    heads: float = param(0.0, "fraction of each attention's heads (kv groups) removed; 0 = off",
                         check=lambda v: 0.0 <= v < 1.0, check_doc="0 <= heads < 1")
    norm: str = param("l1", "norm that ranks units (rows) and heads (o columns)",
                      choices=("l1", "l2"))
    min_keep: int = param(1, "never keep fewer units than this in a layer",
                          check=lambda v: v >= 1, check_doc="min_keep >= 1")
    layers: list = param(["*"], "glob patterns of layer (node) names to shrink")
    exclude: list = param([], "glob patterns of layer names to leave alone")


def apply(model: Model, config: Config, context: StepContext) -> tuple[Model, StepRecord]:
    selected = [n.name for n in select_layers(model, config.layers, config.exclude)]
    record = StepRecord("shrink", {})
    if config.heads > 0:
        model = _shrink_heads(model, set(selected), config, record)
    done: set[str] = set()
    for name in selected:
        if name in done:
            continue
        try:
            model, row = _shrink_layer(model, name, set(selected), config, record.notes)
        except NotShrinkable as e:
            record.notes.append(f"{name}: {e}; not shrunk")
            continue
        done.update(row["group"])
        record.layers.append(row)
    validate(model)
    return model, record


def _shrink_layer(model: Model, name: str, selected: set[str], config: Config,
                  notes: list[str]) -> tuple[Model, dict]:
    """One layer (with its gate/up partner, if any): rank, cut, and the record row."""
    plan = find_group(model, name, selected)
    weights = [model.tensors[model.graph.node(m).inputs["weight"]].decode()
               for m in plan.members]
    units = weights[0].shape[0]
    if any(w.shape[0] != units for w in weights):
        raise NotShrinkable(f"gated layers {list(plan.members)} differ in output size")
    removed = units_to_remove(unit_scores(weights, config.norm), config.sparsity,
                              config.min_keep)
    cut = shrink(model, plan, removed, units)
    notes.extend(cut.notes)
    return cut.model, {
        "layer": name, "group": list(plan.members),
        "consumers": [n.name for n in plan.consumers()],
        "units_before": units, "units_after": units - removed.size,
        "params_before": cut.params_before, "params_after": cut.params_after,
        "removed_units": removed.tolist()}


def _shrink_heads(model: Model, selected: set[str], config: Config, record: StepRecord) -> Model:
    """Remove heads of every attention whose q/k/v/o linears are all selected."""
    for attn in [n for n in model.graph.nodes if n.op == "attention"]:
        try:
            heads = find_heads(model, model.graph.node(attn.name))
            missing = [m for m in heads.linears() if m not in selected]
            if missing:
                raise NotShrinkable(f"projection '{missing[0]}' is not selected")
        except NotShrinkable as e:
            record.notes.append(f"{attn.name}: {e}; heads not removed")
            continue
        o = model.tensors[heads.proj["o"].inputs["weight"]].decode()
        groups = groups_to_remove(group_scores(o, heads, config.norm), config.heads)
        cut = remove_heads(model, heads, groups)
        record.notes.extend(cut.notes)
        model = cut.model
        record.layers.append({
            "layer": attn.name, "heads": heads.linears(),
            "heads_before": heads.num_heads,
            "heads_after": heads.num_heads - cut.removed_heads.size,
            "kv_heads_before": heads.num_kv_heads,
            "kv_heads_after": heads.num_kv_heads - groups.size,
            "params_before": cut.params_before, "params_after": cut.params_after,
            "removed_heads": cut.removed_heads.tolist()})
    return model
