"""Size accounting: per layer and in total, read from the storage formats themselves.

A layer is a node reading stored tensors through weight roles (weight, bias, norm scales...);
its bytes are the sum of those tensors' stored arrays, as on disk (entropy coding included).
Tensors no layer reads through a weight role (e.g. preprocessing constants) are counted under
the pseudo-layer '(other)'. `total_bytes` is the in-memory total, without entropy coding.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from optcli.graph import Model

# Array roles that say where the kept values are, not what they are (Deep Compression's
# "index bits"); an entropy-coded array keeps its role as the prefix ('gaps.bits').
INDEX_ROLES = ("indices", "indptr", "mask", "gaps")


@dataclass(frozen=True)
class LayerSize:
    layer: str
    op: str
    shape: tuple[int, ...]     # shape of the layer's main tensor
    params: int
    nonzeros: int
    bytes: int
    encoding: str
    index_bytes: int = 0       # of `bytes`, those spent on positions of the kept values

    @property
    def bits_per_weight(self) -> float:
        return 8.0 * self.bytes / max(self.params, 1)

    def to_dict(self) -> dict:
        return {**asdict(self), "shape": list(self.shape),
                "bits_per_weight": round(self.bits_per_weight, 3)}


def layer_sizes(model: Model) -> list[LayerSize]:
    groups: dict[str, list[str]] = {}
    ops: dict[str, str] = {}
    seen: set[str] = set()
    for node, _role, tname in model.weight_nodes():
        if tname in seen:      # a tensor shared by two nodes is counted once, at the first
            continue
        seen.add(tname)
        groups.setdefault(node.name, []).append(tname)
        ops[node.name] = node.op
    other = [t for t in model.tensors if t not in seen]
    if other:
        groups["(other)"], ops["(other)"] = other, "-"
    return [_layer(model, name, ops[name], tnames) for name, tnames in groups.items()]


def _layer(model: Model, name: str, op: str, tnames: list[str]) -> LayerSize:
    ts = [model.tensors[t] for t in tnames]
    main = max(ts, key=lambda t: t.size)
    return LayerSize(name, op, main.shape, sum(t.size for t in ts),
                     sum(t.nonzeros for t in ts), sum(t.nbytes for t in ts), main.describe(),
                     sum(index_bytes(t) for t in ts))


def index_bytes(t) -> int:
    """Bytes of a stored tensor's position arrays (indices, row pointers, masks, gaps)."""
    return sum(a.nbytes for role, a in t.arrays().items()
               if role.split(".", 1)[0] in INDEX_ROLES)


def total_bytes(model: Model) -> int:
    """Bytes of the tensors as held in memory once loaded: an entropy-coded tensor counts as
    the tensor it decodes to (`resident()`), since coding exists only on disk."""
    return sum(t.resident().nbytes for t in model.tensors.values())


def stored_bytes(model: Model) -> int:
    """Bytes of the tensors as written to the file (entropy coding included)."""
    return sum(t.nbytes for t in model.tensors.values())


def total_params(model: Model) -> int:
    return sum(t.size for t in model.tensors.values())
