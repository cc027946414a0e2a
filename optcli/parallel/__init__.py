"""Parallel execution of a model: the plan (plan.py) the `parallelize` step stores, the
executors that honour it (data.py: processes sharing mapped weights or threads;
pipeline.py: stages and micro-batches; tensor.py + shard_rewrite.py: Megatron-style splits;
dask_exec.py: data parallel on a Dask cluster), the planner (cost.py, planner.py, advise.py)
and the glue `run`/`eval`/`bench` call (resolve.py, session.py)."""
