"""Float storage at lower precision: `quantize: {precision: float16 | bfloat16}`.

float16 (IEEE half: 5 exponent, 10 mantissa bits, max 65504) is a dense float16 tensor; a
pruned layer stays sparse with float16 values. bfloat16 (8 exponent, 7 mantissa bits: the
float32 range at 2**-8 relative precision) is the `bfloat16` encoding (formats/bfloat16.py,
uint16 bit patterns, round to nearest even); a pruned layer cannot hold it and is refused.
Both halve the weight bytes; no calibration is used.

    steps:
      - quantize: {precision: bfloat16}
"""

from __future__ import annotations

import numpy as np

from optcli.errors import StepError
from optcli.formats import DenseTensor, SparseTensor, StoredTensor
from optcli.formats.bfloat16 import BFloat16Tensor

F16_MAX = float(np.finfo(np.float16).max)


def to_precision(old: StoredTensor, precision: str, layer: str) -> StoredTensor:
    """old stored as float16 or bfloat16; StepError naming the layer when it cannot be."""
    w = old.decode()
    if precision == "float16":
        if np.abs(w).max(initial=0.0) > F16_MAX:
            raise StepError(f"quantize: layer '{layer}': a weight exceeds float16's range "
                            f"({F16_MAX}); use precision bfloat16")
        if isinstance(old, SparseTensor):
            f = old.float_values().astype(np.float16)
            return old.with_values(f, None)
        return DenseTensor(w.astype(np.float16))
    if isinstance(old, SparseTensor):
        raise StepError(f"quantize: layer '{layer}' is pruned (sparse); bfloat16 storage is "
                        "dense only; use precision float16 for it (exclude it here)")
    return BFloat16Tensor.from_float(w)
