"""Every strategy's outputs equal the serial Runtime's (to float tolerance): an MLP, a CNN,
a transformer LM (tensor parallel splits its attention heads and its MLP), the samples."""

import numpy as np
import pytest

from optcli.errors import DataError
from optcli.feeds import batch_feeds
from optcli.io import load_model
from optcli.parallel.resolve import ParallelOptions, open_executor, resolve_plan
from optcli.parallel.shard_rewrite import shard_graph
from optcli.runtime import Runtime
from tests.conftest import SAMPLES, make_cnn, make_lm, make_mlp

STRATEGIES = [("data", "thread"), ("pipeline", None), ("tensor", None)]
MODELS = {"mlp": make_mlp, "cnn": make_cnn, "lm": make_lm}


def _same_as_serial(model, feeds, **opts):
    want = Runtime(model).run(feeds)
    plan = resolve_plan(model, ParallelOptions(**opts))
    with open_executor(model, plan) as ex:
        for _ in range(2):                          # a second batch through the same workers
            got = ex.run(feeds)
            assert got.keys() == want.keys()
            for k in want:
                np.testing.assert_allclose(got[k], want[k], rtol=1e-4, atol=1e-5)
        return ex.describe()


@pytest.mark.parametrize("strategy, kind", STRATEGIES)
@pytest.mark.parametrize("name", sorted(MODELS))
def test_strategy_equals_serial(name, strategy, kind):
    model = MODELS[name]()
    feeds = batch_feeds(model, 13, seq=7)          # odd sizes: uneven slices
    ran = _same_as_serial(model, feeds, workers=2, strategy=strategy, kind=kind)
    assert ran["strategy"] == strategy and ran["workers"] == 2


def test_process_data_parallel_equals_serial_and_shares_weights():
    model = make_lm()
    ran = _same_as_serial(model, batch_feeds(model, 9, seq=5), workers=2, strategy="data")
    assert ran["kind"] == "process" and "shared by memory map" in ran["notes"][0]


def test_three_way_splits_and_more_workers_than_samples():
    model = make_mlp()
    _same_as_serial(model, batch_feeds(model, 2), workers=3, strategy="data", kind="thread")
    _same_as_serial(model, batch_feeds(model, 5), workers=3, strategy="pipeline")


def test_tensor_rewrite_splits_attention_heads_and_the_mlp():
    model = make_lm()
    sharded, regions = shard_graph(model, ("attn.q", "attn.k", "attn.v", "attn.o",
                                           "mlp.up", "mlp.down"), 2)
    parallel = [r for kind, r in regions if kind == "parallel"]
    assert len(parallel) == 2 and all(len(r) == 2 for r in parallel)
    heads = [n.attrs["num_heads"] for n in sharded.graph.nodes if n.op == "attention"]
    assert heads == [1, 1]
    assert {n.op for n in parallel[1][0]} == {"linear", "gelu"}


def test_errors_in_a_worker_come_back_as_one_line():
    model = make_mlp()
    bad = {"image": np.full((4, 1, 8, 8), np.nan, np.float32)}
    for strategy, kind in [("data", "thread"), ("pipeline", None), ("tensor", None)]:
        plan = resolve_plan(model, ParallelOptions(workers=2, strategy=strategy, kind=kind))
        with open_executor(model, plan) as ex, pytest.raises(DataError, match="NaN"):
            ex.run(bad)


@pytest.mark.skipif(not (SAMPLES / "lenet5.npz").is_file(), reason="no sample models")
@pytest.mark.parametrize("strategy, kind", STRATEGIES)
@pytest.mark.parametrize("name", ["lenet300", "lenet5"])
def test_sample_models(name, strategy, kind):
    model = load_model(SAMPLES / f"{name}.npz")
    _same_as_serial(model, batch_feeds(model, 64), workers=2, strategy=strategy, kind=kind)
