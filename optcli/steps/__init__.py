"""The step registry: YAML name -> step module (with `Config`, `DESCRIPTION`, `apply`).

The YAML name, the module name and the key are the same word. Adding a step means adding
its module and one line here; `optcli steps`, validation and the README table all read this.
"""

from types import ModuleType

from optcli.steps import (
    activations,
    encode,
    finetune,
    lowrank,
    parallelize,
    prune,
    quantize,
    share,
    shrink,
    smoothquant,
)

STEPS: dict[str, ModuleType] = {
    "prune": prune,
    "quantize": quantize,
    "shrink": shrink,
    "share": share,
    "encode": encode,
    "lowrank": lowrank,
    "finetune": finetune,
    "smoothquant": smoothquant,
    "activations": activations,
    "parallelize": parallelize,
}
