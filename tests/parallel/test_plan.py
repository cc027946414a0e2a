"""Plan validation: every impossible plan is refused with a message naming the problem."""

import dataclasses
import json

import numpy as np
import pytest

from optcli.errors import GraphError, InputError
from optcli.io import load_model, save_model
from optcli.parallel.plan import ExecutionPlan, check_plan, parse_bytes
from optcli.parallel.resolve import ParallelOptions, resolve_plan
from tests.conftest import make_lm, make_mlp


def test_round_trip_through_json():
    p = ExecutionPlan("pipeline", 2, "thread", 1, stages=("a", "b"), memory_per_worker=10)
    assert ExecutionPlan.from_json(p.to_json()) == p


@pytest.mark.parametrize("raw, message", [
    ({"strategy": "magic"}, "strategy 'magic'"),
    ({"workrs": 2}, "unknown key"),
    ({"workers": "2"}, "'workers' must be an integer"),
    ({"kind": "fiber"}, "worker kind 'fiber'"),
    ({"workers": 0}, "must be >= 1"),
    ({"strategy": "pipeline", "kind": "process", "workers": 2}, "set kind: thread"),
])
def test_bad_plans_name_the_problem(raw, message):
    with pytest.raises(GraphError, match=message):
        check_plan(ExecutionPlan.from_json(raw), make_mlp())


def test_more_pipeline_stages_than_nodes():
    m = make_mlp()                                    # 6 nodes
    with pytest.raises(GraphError, match="7 pipeline stages but the graph has only 6 nodes"):
        resolve_plan(m, ParallelOptions(workers=7, strategy="pipeline"))


def test_stage_that_does_not_fit_in_memory():
    m = make_mlp()
    plan = resolve_plan(m, ParallelOptions(workers=2, strategy="pipeline"))
    small = dataclasses.replace(plan, memory_per_worker=1024)
    with pytest.raises(GraphError, match=r"stage \d .* holds .* of weights, more than the "
                                         r"1.0 KB a worker has"):
        check_plan(small, m)


def test_stage_boundaries_must_follow_graph_order():
    m = make_mlp()
    plan = ExecutionPlan("pipeline", 2, "thread", stages=("fc2", "fc1"))
    with pytest.raises(GraphError, match="must start at the first node"):
        check_plan(plan, m)


def test_tensor_plan_needs_enough_columns_and_fitting_shards():
    m = make_mlp()                                    # fc3 has 10 output columns
    with pytest.raises(GraphError, match="10 output columns, fewer than the 16 workers"):
        check_plan(ExecutionPlan("tensor", 16, "thread", shards=("fc3",)), m)
    with pytest.raises(GraphError, match="not a linear layer"):
        check_plan(ExecutionPlan("tensor", 2, "thread", shards=("relu_1",)), m)
    with pytest.raises(GraphError, match="more than the"):
        check_plan(ExecutionPlan("tensor", 2, "thread", shards=("fc1",),
                                 memory_per_worker=100), m)


def test_a_bad_stored_plan_is_refused_at_save_and_load(tmp_path):
    bad = {"strategy": "pipeline", "workers": 99, "kind": "thread"}
    p = tmp_path / "m.npz"
    with pytest.raises(GraphError, match="99 pipeline stages"):
        save_model(make_mlp().replace(extra={"parallel": bad}), p)
    save_model(make_mlp(), p)
    arrays = dict(np.load(p))
    manifest = json.loads(arrays["__optcli__"].tobytes())
    manifest["extra"]["parallel"] = bad
    arrays["__optcli__"] = np.frombuffer(json.dumps(manifest).encode(), np.uint8)
    np.savez(p, **arrays)
    with pytest.raises(GraphError, match=f"{p}: parallel plan: 99 pipeline stages but the "
                                         "graph has only 6 nodes"):
        load_model(p)


def test_data_parallel_needs_batch_first():
    m = make_lm()
    vi = dataclasses.replace(m.graph.outputs[0], shape=("seq", "batch", 20))
    odd = m.replace(graph=dataclasses.replace(m.graph, outputs=(vi,)))
    with pytest.raises(GraphError, match="batch must be first"):
        check_plan(ExecutionPlan("data", 2), odd)


def test_command_line_overrides_the_stored_plan():
    m = make_mlp().replace(extra={"parallel": ExecutionPlan("data", 2, "thread", 1).to_json()})
    assert resolve_plan(m, ParallelOptions()).kind == "thread"
    p = resolve_plan(m, ParallelOptions(workers=3, strategy="pipeline"))
    assert (p.strategy, p.workers, p.kind, len(p.stages)) == ("pipeline", 3, "thread", 3)
    assert resolve_plan(make_mlp(), ParallelOptions()) is None       # nothing: plain Runtime


def test_parse_bytes():
    assert parse_bytes("512MB") == 512 << 20 and parse_bytes("2g") == 2 << 30
    assert parse_bytes("100") == 100 and np.isclose(parse_bytes("1.5KB"), 1536)
    with pytest.raises(InputError, match="expected e.g. 512MB"):
        parse_bytes("lots")


def test_validate_checks_a_parallelize_plan_against_the_model(tmp_path):
    """`optcli validate` (and compress, before computing) refuses a plan the model can't
    take, naming the step; the planner's `auto` is left to the step."""
    from optcli.config import check_against_model, parse_pipeline
    from optcli.errors import ConfigError
    model = make_mlp()                                     # flatten + 3 x (linear, relu) ...
    many = len(model.graph.nodes) + 1
    bad = parse_pipeline(f"steps:\n  - parallelize: {{strategy: pipeline, workers: {many}}}\n",
                         "p.yaml", tmp_path)
    with pytest.raises(ConfigError, match=r"p.yaml: 'steps\[0\].parallelize': .*pipeline "
                                          "stages but the graph has only"):
        check_against_model(bad, model)
    for text in ("{strategy: pipeline, workers: 2}", "{strategy: auto, workers: 64}"):
        check_against_model(parse_pipeline(f"steps:\n  - parallelize: {text}\n", "p.yaml",
                                           tmp_path), model)
