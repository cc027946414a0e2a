"""Pipeline YAML validation: every error names the key path (and line), before any compute."""

from pathlib import Path

import pytest

from optcli.config import check_against_model, load_pipeline, parse_pipeline
from optcli.errors import ConfigError, InputError
from tests.conftest import make_mlp, write_yaml


def _parse(text):
    return parse_pipeline(text, "p.yaml", Path("."))


def test_a_full_pipeline_parses():
    p = _parse("""
steps:
  - prune: {method: magnitude, sparsity: 0.9, scope: global, exclude: [fc3]}
  - quantize: {bits: 8, granularity: tensor, symmetric: false}
calibration: {data: calib.npz, samples: 64}
evaluation: {data: eval.npz, metric: top1}
latency: {batch: 4, repeats: 5}
gates: {max_accuracy_drop: 0.01, min_compression: 4}
seed: 7
description: an example
""")
    assert [s.name for s in p.steps] == ["prune", "quantize"]
    assert p.steps[0].config.sparsity == 0.9 and p.steps[1].config.symmetric is False
    assert p.gates.min_compression == 4.0 and p.seed == 7 and p.calibration.samples == 64


@pytest.mark.parametrize("text, message", [
    ("steps:\n  - prune: {sparsty: 0.5}\n",
     r"p.yaml:2: unknown key 'steps\[0\].prune.sparsty'; did you mean 'sparsity'"),
    ("steps:\n  - prun: {}\n", r"p.yaml:2: unknown step 'prun' .*did you mean 'prune'"),
    ("steps:\n  - quantize:\n      granularity: chanel\n",
     r"p.yaml:3: 'steps\[0\].quantize.granularity' is 'chanel' \(did you mean 'channel'"),
    ("steps:\n  - prune: {sparsity: 1.5}\n", r"out of range: 0 <= sparsity < 1"),
    ("steps:\n  - prune: {sparsity: high}\n", r"'steps\[0\].prune.sparsity' must be a number"),
    ("steps:\n  - quantize: {bits: 1}\n", r"out of range: an integer 2..8 or 'auto'"),
    ("steps:\n  - quantize: {bits: auto}\n", r"needs exactly one of target_bits"),
    ("steps:\n  - prune: {layers: fc1}\n", r"must be a list of strings"),
    ("stepz: []\n", r"unknown key 'stepz'; did you mean 'steps'"),
    ("steps: []\n", r"non-empty list"),
    ("steps:\n  - prune: {}\ngates: {min_compresion: 3}\n",
     r"p.yaml:3: unknown key 'gates.min_compresion'; did you mean 'min_compression'"),
    ("steps:\n  - prune: {}\ncalibration: {samples: 3}\n", r"'calibration' needs 'data'"),
    ("steps:\n  - prune: {}\nseed: -1\n", r"seed"),
    ("steps:\n  - prune: {}\n  - prune: {}\n    quantize: {}\n", r"steps\[1\]"),
    ("steps: [\n", r"not valid YAML"),
    ("steps:\n  - prune: !!python/object:os.system {}\n", r"p.yaml:2"),
    ("a: 1\na: 2\n", r"duplicate key 'a'"),
    ("- just a list\n", r"must be a mapping"),
    ("steps:\n  - prune: {method: wanda}\n", r"'steps\[0\].prune' needs a 'calibration:'"),
    ("steps:\n  - prune: {method: nm, n: 4, m: 2}\n", r"p.yaml:2: 'steps\[0\].prune'.*0 < n < m"),
    ("steps:\n  - prune: {method: random, threshold: 0.1}\n", r"threshold.*magnitude only"),
])
def test_bad_pipelines_name_the_key_and_line(text, message):
    with pytest.raises(ConfigError, match=message):
        _parse(text)


def test_unquoted_exponent_is_a_number():
    p = _parse("steps:\n  - prune: {sparsity: 5e-1}\n")
    assert p.steps[0].config.sparsity == 0.5


def test_selector_must_match_a_layer():
    p = _parse("steps:\n  - prune: {layers: ['conv*']}\n")
    with pytest.raises(ConfigError, match=r"steps\[0\].prune.layers.*'conv\*' matches no layer"):
        check_against_model(p, make_mlp())
    p = _parse("steps:\n  - prune: {exclude: ['fc9']}\n")
    with pytest.raises(ConfigError, match="fc9"):
        check_against_model(p, make_mlp())


def test_data_paths_resolve_against_the_yaml_folder(tmp_path):
    (tmp_path / "sub").mkdir()
    y = write_yaml(tmp_path / "sub" / "p.yaml",
                   "steps:\n  - prune: {}\nevaluation: {data: ../eval.npz}\n")
    p = load_pipeline(y)
    assert p.resolve(p.evaluation.data) == tmp_path / "sub" / ".." / "eval.npz"
    with pytest.raises(ConfigError, match="not found"):
        check_against_model(p, make_mlp())


def test_missing_and_binary_config_files(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_pipeline(tmp_path / "none.yaml")
    bad = tmp_path / "bin.yaml"
    bad.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ConfigError, match="bin.yaml"):
        load_pipeline(bad)
