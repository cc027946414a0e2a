"""Entropy-coded storage: any other encoding with its integer arrays Huffman-coded.

What the `encode` step writes (optcli/steps/encode.py; Huffman 1952, as Deep Compression
does for quantized weights and sparse indices, Han, Mao & Dally 2016). The tensor wraps an
inner stored tensor (dense, sparse, quantized, ...). Each integer array of the inner tensor
(uint8 bitmasks, uint8/uint16 column indices, int8 codes, ...) that comes out smaller is
replaced by three arrays (optcli/coding/huffman.py):

    <role>.lengths  uint8 [max symbol + 1]   code length per symbol, 0 = absent
    <role>.offsets  uint  [K]                first bit of each of K interleaved sub-streams
    <role>.bits     uint8 [ceil(bits / 8)]   the codes, MSB first

Float arrays (values, scales) and arrays that would not shrink stay as they are, under their
own role. params: {"inner": encoding, "inner_params": {...}, "coder": "huffman",
"roles": {role: {"coded": bool, "dtype": "int8", "shape": [...]}}}.

Entropy coding exists only on disk: loading decodes every coded array, rebuilds the inner
tensor through its own `from_stored` (so all of its checks run) and keeps it; `resident()`
returns it and the runtime executes that. `nbytes` is the coded size, what the file holds.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from optcli.coding.huffman import CODED_DTYPES, HuffmanCode, decode, encode
from optcli.errors import ModelFormatError
from optcli.formats.base import StoredTensor

PARTS = ("bits", "lengths", "offsets")


class EntropyTensor(StoredTensor):
    encoding = "entropy"

    def __init__(self, inner: StoredTensor, codes: dict[str, HuffmanCode]):
        if isinstance(inner, EntropyTensor):
            raise ValueError("an entropy-coded tensor cannot wrap another one")
        self.inner, self.codes = inner, codes
        self.shape = inner.shape

    @classmethod
    def code(cls, inner: StoredTensor,
             cost: Callable[[dict[str, np.ndarray]], int] | None = None) -> "EntropyTensor":
        """Huffman-code every integer array of `inner` (or of what it wraps) whose coded parts
        cost less than the array itself; `cost(arrays)` is what a set of arrays takes in the
        file (default: their bytes; the encode step passes the container's exact cost)."""
        cost = cost or (lambda arrays: sum(a.nbytes for a in arrays.values()))
        inner = inner.resident()
        codes = {}
        for role, a in inner.arrays().items():
            if a.dtype.name in CODED_DTYPES and a.size:
                c = encode(a)
                if cost({f"{role}.{p}": getattr(c, p) for p in PARTS}) < cost({role: a}):
                    codes[role] = c
        return cls(inner, codes)

    def resident(self) -> StoredTensor:
        return self.inner

    def decode(self) -> np.ndarray:
        return self.inner.decode()

    def arrays(self) -> dict[str, np.ndarray]:
        out = {}
        for role, a in self.inner.arrays().items():
            c = self.codes.get(role)
            if c is None:
                out[role] = a
            else:
                out.update({f"{role}.{p}": getattr(c, p) for p in PARTS})
        return out

    def params(self) -> dict[str, Any]:
        roles = {role: {"coded": role in self.codes, "dtype": a.dtype.name,
                        "shape": [int(s) for s in a.shape]}
                 for role, a in self.inner.arrays().items()}
        return {"inner": self.inner.encoding, "inner_params": self.inner.params(),
                "coder": "huffman", "roles": roles}

    @property
    def dtype(self) -> str:
        return self.inner.dtype

    @property
    def nonzeros(self) -> int:
        return self.inner.nonzeros

    def describe(self) -> str:
        return f"huffman({self.inner.describe()})"

    @classmethod
    def from_stored(cls, name: str, shape: tuple[int, ...], dtype: str,
                    arrays: dict[str, np.ndarray], params: dict[str, Any]) -> "EntropyTensor":
        from optcli.formats import ENCODINGS  # the registry imports this module

        inner_enc, inner_params = params.get("inner"), params.get("inner_params", {})
        if inner_enc == cls.encoding or inner_enc not in ENCODINGS:
            raise ModelFormatError(f"tensor '{name}': entropy inner encoding {inner_enc!r}; "
                                   f"valid: {', '.join(e for e in ENCODINGS if e != 'entropy')}")
        if params.get("coder") != "huffman" or not isinstance(inner_params, dict):
            raise ModelFormatError(f"tensor '{name}': entropy coder must be 'huffman' with "
                                   "'inner_params' a mapping")
        roles = _roles(name, params.get("roles"))
        expected = {f"{r}.{p}" if m["coded"] else r for r, m in roles.items()
                    for p in (PARTS if m["coded"] else ("",))}
        if set(arrays) != expected:
            raise ModelFormatError(f"tensor '{name}': entropy arrays {sorted(arrays)} do not "
                                   f"match the declared roles (expected {sorted(expected)})")
        parts, codes = {}, {}
        for role, m in roles.items():
            if not m["coded"]:
                parts[role] = arrays[role]
                if parts[role].dtype.name != m["dtype"] or list(parts[role].shape) != m["shape"]:
                    raise ModelFormatError(f"tensor '{name}': array '{role}' does not match "
                                           "its declared dtype and shape")
                continue
            c = HuffmanCode(*(arrays[f"{role}.{p}"] for p in ("lengths", "offsets", "bits")),
                            count=math.prod(m["shape"]))
            parts[role] = decode(c, m["dtype"], tuple(m["shape"]), name)
            codes[role] = c
        inner = ENCODINGS[inner_enc].from_stored(name, shape, dtype, parts, inner_params)
        return cls(inner, codes)


def _roles(name: str, roles: Any) -> dict[str, dict[str, Any]]:
    """The declared roles, each {"coded": bool, "dtype": str, "shape": [int >= 0]}."""
    def ok(m: Any) -> bool:
        return (isinstance(m, dict) and isinstance(m.get("coded"), bool)
                and isinstance(m.get("dtype"), str) and isinstance(m.get("shape"), list)
                and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0
                        for s in m["shape"])
                and (not m["coded"] or m["dtype"] in CODED_DTYPES))
    if not isinstance(roles, dict) or not all(isinstance(r, str) and ok(m)
                                              for r, m in roles.items()):
        raise ModelFormatError(f"tensor '{name}': entropy params 'roles' must map each role to "
                               "{coded, dtype, shape} (coded dtypes: "
                               f"{', '.join(CODED_DTYPES)})")
    return roles
