"""Docs and examples cannot drift from the code: every step, op, command and exit code is
documented, and every shipped config validates."""

from pathlib import Path

import pytest

from optcli import errors
from optcli.cli import app
from optcli.config import check_against_model, load_pipeline
from optcli.io import load_model
from optcli.ops import OPS
from optcli.steps import STEPS

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
FORMAT = (ROOT / "docs" / "format.md").read_text()


@pytest.mark.parametrize("name", sorted(STEPS))
def test_every_step_has_docs_an_example_and_a_readme_row(name):
    mod = STEPS[name]
    assert mod.__doc__ and mod.DESCRIPTION
    assert (ROOT / "configs" / "steps" / f"{name}.yaml").is_file()
    assert f"| `{name}` |" in README


def test_every_op_is_in_the_format_doc():
    for op in OPS:
        assert f"| {op} " in FORMAT or f" {op}," in FORMAT or f", {op} " in FORMAT, op


def test_every_command_is_in_the_readme():
    for cmd in app.registered_commands:
        name = cmd.name or cmd.callback.__name__
        assert f"optcli {name}" in README, name


def test_exit_codes_are_in_the_readme():
    for code in (errors.EXIT_OK, errors.EXIT_RUNTIME, errors.EXIT_INPUT, errors.EXIT_GATE,
                 errors.EXIT_INTERRUPTED):
        assert f"| {code} |" in README


@pytest.mark.parametrize("config", sorted(p for p in (ROOT / "configs").rglob("*.yaml")
                                           if "arch" not in p.relative_to(ROOT).parts),
                         ids=lambda p: p.name)
def test_shipped_configs_validate(config):
    p = load_pipeline(config)
    target = {"lenet300": "lenet300.npz", "lenet5": "lenet5.npz", "charlm": "charlm.npz"}
    for prefix, model in target.items():
        if config.name.startswith(prefix) and (ROOT / "sample_models" / model).is_file():
            check_against_model(p, load_model(ROOT / "sample_models" / model))
