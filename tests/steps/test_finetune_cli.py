"""`optcli finetune`: writes a trained model atomically, reports epochs as JSON, maps errors."""

from __future__ import annotations

import json

import numpy as np
from typer.testing import CliRunner

from optcli.cli import app
from optcli.io import load_model


def test_finetune_command(tmp_path, mlp_path, mlp_data):
    out = tmp_path / "out.npz"
    args = ["finetune", str(mlp_path), "--data", str(mlp_data), "-o", str(out), "--epochs",
            "2", "--lr", "0.01", "--schedule", "cosine", "--distill-temperature", "2",
            "--eval", str(mlp_data), "--json"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    r = json.loads(res.stdout)
    assert r["kind"] == "finetune" and len(r["step"]["details"]["epochs"]) == 2
    assert r["accuracy"]["metric"] == "top1"
    new = load_model(out)
    assert new.provenance["steps"][-1]["step"] == "finetune"
    assert not np.array_equal(new.tensors["fc1.weight"].decode(),
                              load_model(mlp_path).tensors["fc1.weight"].decode())
    again = CliRunner().invoke(app, args)                 # no --force: refused, exit 2
    assert again.exit_code == 2
    table = CliRunner().invoke(app, args[:-1] + ["--force"])
    assert table.exit_code == 0 and "epochs" in table.stdout


def test_finetune_bad_option_is_a_usage_error(tmp_path, mlp_path, mlp_data):
    res = CliRunner().invoke(app, ["finetune", str(mlp_path), "--data", str(mlp_data), "-o",
                                   str(tmp_path / "o.npz"), "--optimizer", "adagrad"])
    assert res.exit_code == 2 and "valid: sgd, adam, adamw" in res.output
    assert not (tmp_path / "o.npz").exists()
