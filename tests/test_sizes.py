"""Size accounting: per-layer bytes add up to the stored arrays; value vs index bytes."""

import numpy as np

from optcli.formats import SparseTensor
from optcli.sizes import index_bytes, layer_sizes, stored_bytes, total_bytes
from optcli.steps import STEPS
from optcli.steps.base import StepContext
from tests.conftest import make_mlp


def test_layer_bytes_add_up_to_the_stored_total():
    model = make_mlp()
    assert sum(r.bytes for r in layer_sizes(model)) == stored_bytes(model) == total_bytes(model)
    assert all(r.index_bytes == 0 for r in layer_sizes(model))      # dense: no positions


def test_index_bytes_are_the_position_arrays_of_each_sparse_layout():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((50, 200)).astype(np.float32)
    w[rng.random(w.shape) > 0.1] = 0
    for layout, roles in (("csr", ("indices", "indptr")), ("gaps", ("gaps", "indptr")),
                          ("bitmask", ("mask",))):
        t = SparseTensor.from_dense(w, layout)
        assert index_bytes(t) == sum(t.arrays()[r].nbytes for r in roles)
        assert t.nbytes - index_bytes(t) == t.values.nbytes


def test_a_pruned_int8_layer_spends_8_value_bits_per_kept_weight_plus_its_scales():
    prune, quantize = STEPS["prune"], STEPS["quantize"]
    model, _ = prune.apply(make_mlp(sizes=(256, 128, 10)),
                           prune.Config(sparsity=0.9), StepContext())
    model, _ = quantize.apply(model, quantize.Config(), StepContext())
    fc = layer_sizes(model)[0]
    value_bits = 8.0 * (fc.bytes - fc.index_bytes) / fc.nonzeros
    overhead = 8.0 * (128 * 4 + 128 * 4) / fc.nonzeros       # per-row scales + float bias
    assert abs(value_bits - (8.0 * (fc.nonzeros - 128) / fc.nonzeros + overhead)) < 0.1
