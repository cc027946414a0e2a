"""Data parallel on a Dask LocalCluster (loopback, 2 worker processes): the same accuracy
and outputs as the local run, in order, also when a worker is killed mid-run."""

import json
import os
import signal

import numpy as np
import pytest
from typer.testing import CliRunner

from optcli.cli import app
from optcli.data import Dataset
from optcli.evaluate import evaluate
from optcli.io import save_model
from optcli.parallel.ordered import OrderedOutputs
from optcli.runtime import Runtime
from tests.conftest import make_cnn

distributed = pytest.importorskip("distributed")
from optcli.parallel.dask_exec import DaskExecutor  # noqa: E402

runner = CliRunner()


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=None) as cluster, \
            distributed.Client(cluster) as c:
        yield c


@pytest.fixture(scope="module")
def cnn_data():
    rng = np.random.default_rng(3)
    return Dataset("mem", {"image": rng.standard_normal((1200, 1, 8, 8)).astype(np.float32)},
                   rng.integers(0, 10, 1200))


def test_eval_through_dask_equals_local(client, cnn_data):
    m = make_cnn()
    local = evaluate(m, cnn_data, batch_size=50)
    with DaskExecutor(m, client=client) as ex:
        remote = evaluate(m, cnn_data, batch_size=50, runtime=OrderedOutputs(
            ex.map(f for f, _ in cnn_data.batches(50))))
        assert ex.describe()["workers"] == 2
    assert remote.value == local.value and remote.samples == 1200


def test_cli_executor_address_and_scheduler_file(client, tmp_path, cnn_data):
    model, data = tmp_path / "cnn.npz", tmp_path / "d.npz"
    save_model(make_cnn(), model)
    np.savez(data, image=cnn_data.inputs["image"][:300], labels=cnn_data.labels[:300])
    address = "dask://" + client.scheduler.address.removeprefix("tcp://")
    r = runner.invoke(app, ["eval", str(model), "--data", str(data), "--json",
                            "--executor", address, "--batch-size", "64"])
    assert r.exit_code == 0, r.output
    local = runner.invoke(app, ["eval", str(model), "--data", str(data), "--json"])
    got, want = json.loads(r.stdout), json.loads(local.stdout)
    assert got["value"] == want["value"] and got["parallel"]["executor"] == "dask"
    sched = tmp_path / "scheduler.json"
    sched.write_text(json.dumps({"address": client.scheduler.address}))
    out = tmp_path / "y.npz"
    r = runner.invoke(app, ["run", str(model), "--input", str(data), "-o", str(out),
                            "--executor", str(sched), "--batch-size", "64"])
    assert r.exit_code == 0, r.output
    want_y = Runtime(make_cnn()).run({"image": cnn_data.inputs["image"][:300]})["logits"]
    np.testing.assert_allclose(np.load(out)["logits"], want_y, rtol=1e-5, atol=1e-6)
    bad = runner.invoke(app, ["run", str(model), "--input", str(data), "-o", str(out),
                              "--executor", "nowhere"])
    assert bad.exit_code == 2 and "dask://HOST:PORT" in bad.stderr


def test_an_unreachable_scheduler_is_a_usage_error_naming_it(tmp_path, cnn_data, monkeypatch):
    from optcli.parallel import dask_exec
    monkeypatch.setattr(dask_exec, "CONNECT_TIMEOUT_S", 1)
    model, data = tmp_path / "cnn.npz", tmp_path / "d.npz"
    save_model(make_cnn(), model)
    np.savez(data, image=cnn_data.inputs["image"][:8], labels=cnn_data.labels[:8])
    r = runner.invoke(app, ["eval", str(model), "--data", str(data),
                            "--executor", "dask://127.0.0.1:1"])
    assert r.exit_code == 2
    assert "cannot reach the Dask scheduler" in r.stderr and "127.0.0.1:1" in r.stderr


def test_killing_a_worker_mid_run_loses_and_duplicates_nothing(client, cnn_data):
    m = make_cnn()
    want = Runtime(m).run(cnn_data.inputs)["logits"]
    pids = client.run(os.getpid)
    victim = sorted(pids.values())[0]
    got = []
    with DaskExecutor(m, client=client, window=4) as ex:
        for i, out in enumerate(ex.map(f for f, _ in cnn_data.batches(20))):
            got.append(out["logits"])
            if i == 1:
                os.kill(victim, signal.SIGKILL)
    y = np.concatenate(got)
    assert y.shape == want.shape
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-6)
    client.wait_for_workers(2, timeout=30)
    assert victim not in client.run(os.getpid).values()


def test_a_chunk_the_scheduler_cancels_is_submitted_again():
    """The scheduler may cancel a chunk when a worker dies ("cancelled for reason: unknown");
    map() resubmits it (the model scattered anew) and yields every chunk once, in order."""
    from concurrent.futures import CancelledError

    class Future:
        def __init__(self, value, fail):
            self.value, self.fail = value, fail

        def result(self):
            if self.fail:
                raise CancelledError("cancelled for reason: unknown")
            return self.value

    class Client:
        scheduler = type("S", (), {"address": "tcp://fake"})()

        def __init__(self):
            self.keys, self.scatters = [], 0

        def scheduler_info(self):
            return {"workers": {"a": {}, "b": {}}}

        def scatter(self, model, **kw):
            self.scatters += 1
            return model

        def submit(self, fn, model, token, weights, feeds, key, **kw):
            self.keys.append(key)
            return Future({"y": feeds["x"] * 2}, fail=key.endswith("-1-0"))

    fake = Client()
    with DaskExecutor(make_cnn(), client=fake, window=2) as ex:
        out = [o["y"][0] for o in ex.map({"x": np.array([i])} for i in range(4))]
    assert out == [0, 2, 4, 6] and fake.scatters == 2
    assert [k.rsplit("-", 2)[1:] for k in fake.keys] == [
        ["0", "0"], ["1", "0"], ["2", "0"], ["1", "1"], ["3", "0"]]
