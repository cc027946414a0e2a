"""The encode step and the entropy encoding: lossless through save/load and the runtime, a
smaller file, an untouched input, and `encode` only as the last step."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from optcli.cli import app
from optcli.config import parse_pipeline
from optcli.errors import ConfigError, ModelFormatError
from optcli.formats import ENCODINGS, EntropyTensor
from optcli.io import load_model, save_model, to_arrays
from optcli.pipeline import run_steps
from optcli.runtime import Runtime
from optcli.steps import STEPS
from optcli.steps.base import StepContext
from tests.conftest import ROOT, make_mlp, stored_arrays, write_yaml

CTX = StepContext(seed=0)
FEEDS = {"image": np.random.default_rng(3).standard_normal((6, 1, 8, 8)).astype(np.float32)}


def _apply(step, model, **params):
    return STEPS[step].apply(model, STEPS[step].Config(**params), CTX)


@pytest.fixture(scope="module")
def small():
    """A seeded MLP (64-2048-512-10), 70 % pruned globally, int8 codes: what encode codes.
    fc2's arrays are over 64 KiB, so the container stores them raw and coding pays; arrays
    under it are deflated by the container already, which Huffman coding seldom beats."""
    m, _ = _apply("prune", make_mlp(sizes=(64, 2048, 512, 10)), sparsity=0.7, scope="global")
    return _apply("quantize", m)[0]


def test_encode_save_load_is_lossless(tmp_path, small):
    coded, rec = _apply("encode", small)
    assert any(isinstance(t, EntropyTensor) for t in coded.tensors.values())
    save_model(coded, tmp_path / "e.npz")
    back = load_model(tmp_path / "e.npz")
    for name, t in small.tensors.items():
        np.testing.assert_array_equal(back.tensors[name].decode(), t.decode())
        for role, a in t.arrays().items():       # the inner arrays, bit for bit
            b = back.tensors[name].resident().arrays()[role]
            assert b.dtype == a.dtype and np.array_equal(b, a)
    for kernels in ("fast", "reference"):
        np.testing.assert_array_equal(Runtime(back, kernels).run(FEEDS)["logits"],
                                      Runtime(small, kernels).run(FEEDS)["logits"])


def test_file_is_smaller_and_records_bits_per_symbol(tmp_path, small):
    coded, rec = _apply("encode", small)
    plain = save_model(small, tmp_path / "p.npz")
    assert save_model(coded, tmp_path / "e.npz") < plain
    rows = [r for r in rec.layers if r["bytes_after"] < r["bytes_before"]]
    assert rows and all(r["encoding"].startswith("huffman(") for r in rows)
    arrays = [a for r in rows for a in r["arrays"] if a["coded"]]
    assert arrays
    for a in arrays:
        assert a["entropy"] <= a["bits_after"] < a["bits_before"]
        assert a["bytes_after"] < a["bytes_before"] and a["distinct"] <= a["symbols"]
    t = coded.tensors[rows[0]["tensor"]]
    assert t.describe().startswith("huffman(") and t.nbytes < t.resident().nbytes
    assert any(k.endswith(".bits") for k in t.arrays())


def test_encoding_is_deterministic(small):
    a, b = to_arrays(_apply("encode", small)[0]), to_arrays(_apply("encode", small)[0])
    assert set(a) == set(b) and all(np.array_equal(a[k], b[k]) for k in a)


def test_input_model_is_unchanged(small):
    before = stored_arrays(small)
    _apply("encode", small)
    after = stored_arrays(small)
    assert before.keys() == after.keys()
    for name in before:
        for role in before[name]:
            np.testing.assert_array_equal(before[name][role], after[name][role])


def test_nothing_to_gain_leaves_tensors_and_notes_it():
    m = make_mlp()                                        # dense float: nothing to code
    out, rec = _apply("encode", m)
    assert all(out.tensors[k] is m.tensors[k] for k in m.tensors)
    assert rec.layers == [] and "nothing to gain" in rec.notes[0]


def test_weights_only_and_layer_selection(small):
    out, rec = _apply("encode", small, tensors="weights", exclude=["fc1"])
    assert {r["tensor"] for r in rec.layers} <= {"fc2.weight", "fc3.weight"}
    assert out.tensors["fc1.weight"] is small.tensors["fc1.weight"]


def test_encode_must_be_the_last_step():
    text = "steps:\n  - encode: {}\n  - quantize: {}\n"
    with pytest.raises(ConfigError, match=r"'steps\[0\].encode' must be the last step.*"
                                          r"'steps\[1\].quantize'"):
        parse_pipeline(text, "p.yaml", ROOT)
    parse_pipeline("steps:\n  - quantize: {}\n  - encode: {}\n", "p.yaml", ROOT)


def test_steps_after_loading_an_encoded_model_see_the_decoded_tensors(small):
    coded, _ = _apply("encode", small)
    pipe = parse_pipeline("steps:\n  - prune: {sparsity: 0.8}\n", "p.yaml", ROOT)
    out, _ = run_steps(coded, pipe, CTX)
    assert not any(isinstance(t, EntropyTensor) for t in out.tensors.values())
    assert out.tensors["fc1.weight"].describe().endswith("int8")   # still int8 codes


def _stored(t):
    return t.arrays(), t.params()


@pytest.mark.parametrize("corrupt", [
    lambda a, p: (a, {**p, "inner": "entropy"}),
    lambda a, p: (a, {**p, "inner": "nope"}),
    lambda a, p: (a, {**p, "coder": "lzma"}),
    lambda a, p: (a, {**p, "roles": []}),
    lambda a, p: ({k: v for k, v in list(a.items())[1:]}, p),
    lambda a, p: ({**a, "extra": np.zeros(1)}, p),
    lambda a, p: (a, {**p, "roles": {r: {**m, "shape": [m["shape"][0] + 1]}
                                     for r, m in p["roles"].items()}}),
    lambda a, p: ({k: (v[:-1] if k.endswith(".bits") else v) for k, v in a.items()}, p),
])
def test_malformed_entropy_tensor_raises(small, corrupt):
    coded, _ = _apply("encode", small)
    t = coded.tensors["fc1.weight"]
    assert isinstance(t, EntropyTensor)
    arrays, params = corrupt(*_stored(t))
    with pytest.raises(ModelFormatError, match="fc1.weight"):
        ENCODINGS["entropy"].from_stored("fc1.weight", t.shape, t.dtype, arrays,
                                         json.loads(json.dumps(params)))


runner = CliRunner()


def test_compress_prune_quantize_encode_on_lenet300(tmp_path):
    model = ROOT / "sample_models" / "lenet300.npz"
    if not model.is_file():
        pytest.skip("sample model missing")
    # fc1 keeps ~117k codebook indices (> 64 KiB: stored raw by the container, so coding
    # pays; smaller arrays are deflated by the container and seldom gain from coding)
    cfg = write_yaml(tmp_path / "p.yaml", "steps:\n"
                     "  - prune: {method: magnitude, sparsity: 0.5, scope: global}\n"
                     "  - share: {bits: 4}\n"
                     "  - encode: {}\n"
                     "latency: {batch: 4, repeats: 2, warmup: 1}\n")
    plain = write_yaml(tmp_path / "q.yaml", cfg.read_text().replace("  - encode: {}\n", ""))
    docs = {}
    for name, c in (("e", cfg), ("q", plain)):
        r = runner.invoke(app, ["compress", str(model), "--config", str(c), "-o",
                                str(tmp_path / f"{name}.npz"), "--json"])
        assert r.exit_code == 0, r.output
        docs[name] = json.loads(r.stdout)
    e, q = docs["e"], docs["q"]
    assert e["size"]["after_bytes"] == (tmp_path / "e.npz").stat().st_size
    assert e["size"]["after_bytes"] < q["size"]["after_bytes"]
    assert e["size"]["memory_after_bytes"] == q["size"]["memory_after_bytes"]   # decoded
    assert e["latency"]["resident_after_bytes"] == q["latency"]["resident_after_bytes"]
    assert [s["step"] for s in e["steps"]] == ["prune", "share", "encode"]
    assert any(x["encoding_after"].startswith("huffman(") for x in e["layers"])
    a, b = load_model(tmp_path / "e.npz"), load_model(tmp_path / "q.npz")
    feeds = {"image": np.random.default_rng(0).random((3, 1, 28, 28)).astype(np.float32) * 255}
    np.testing.assert_array_equal(Runtime(a).run(feeds)["logits"], Runtime(b).run(feeds)["logits"])
    r = runner.invoke(app, ["inspect", str(tmp_path / "e.npz")])
    assert r.exit_code == 0 and "huffman(" in r.stdout
