"""PyTorch checkpoints read without torch: both file formats, dtypes, views, nesting, hostile
pickles refused before anything runs, truncation, and a LeNet-5 imported through an arch spec
that matches torch's forward pass."""

from __future__ import annotations

import collections
import os
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest

from optcli.errors import ConfigError, ModelFormatError
from optcli.interop.arch_spec import import_torch
from optcli.interop.torch_checkpoint import read_state_dict
from optcli.runtime import Runtime

ROOT = Path(__file__).resolve().parents[2]
LENET_SPEC = ROOT / "configs" / "arch" / "lenet5_torch.yaml"
FORMATS = [pytest.param({}, id="zip"),
           pytest.param({"_use_new_zipfile_serialization": False}, id="legacy")]


def _torch():
    return pytest.importorskip("torch")


def _as_numpy(t) -> np.ndarray:
    torch = _torch()
    return (t.float() if t.dtype == torch.bfloat16 else t).numpy()


@pytest.mark.parametrize("fmt", FORMATS)
def test_dtypes_views_and_nesting(tmp_path, fmt):
    torch = _torch()
    g = torch.Generator().manual_seed(0)
    sd = collections.OrderedDict(
        w=torch.randn(3, 4, generator=g), h=torch.randn(5, generator=g).half(),
        bf=torch.randn(2, 3, generator=g).bfloat16(), d=torch.randn(2, generator=g).double(),
        ids=torch.arange(7), i32=torch.arange(3, dtype=torch.int32),
        u8=torch.arange(4, dtype=torch.uint8), flag=torch.tensor([True, False]),
        view=torch.randn(4, 6, generator=g)[1:, 1::2],          # offset + strides
        t=torch.randn(3, 5, generator=g).t(), scalar=torch.tensor(2.5), empty=torch.zeros(0, 3))
    path = tmp_path / "ckpt.pt"
    torch.save({"state_dict": sd, "epoch": 3, "optimizer": "adam"}, path, **fmt)
    got = read_state_dict(path)
    assert sorted(got) == sorted(sd)
    for k, v in sd.items():
        want = _as_numpy(v)
        assert got[k].dtype == want.dtype and got[k].shape == want.shape, k
        np.testing.assert_array_equal(got[k], want, err_msg=k)


def test_model_nesting_and_parameters_flatten_with_dots(tmp_path):
    torch = _torch()
    lin = torch.nn.Linear(3, 2)
    path = tmp_path / "ckpt.pth"
    torch.save({"model": {"enc": lin.state_dict(), "head": [lin.weight]}}, path)
    got = read_state_dict(path)
    assert sorted(got) == ["enc.bias", "enc.weight", "head.0"]
    np.testing.assert_array_equal(got["head.0"], lin.weight.detach().numpy())


class _Evil:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"echo pwned > {self.marker}",))


@pytest.mark.parametrize("how", ["torch-zip", "torch-legacy", "plain-pickle"])
def test_hostile_pickle_is_refused_and_nothing_runs(tmp_path, how):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    if how == "plain-pickle":
        path.write_bytes(pickle.dumps({"x": _Evil(marker)}, protocol=2))
    else:
        torch = _torch()
        torch.save({"w": torch.zeros(2), "x": _Evil(marker)}, path,
                   _use_new_zipfile_serialization=how == "torch-zip")
    system = "nt" if sys.platform == "win32" else "posix"
    with pytest.raises(ModelFormatError, match=rf"{path.name}: pickle references "
                       rf"'({system}|os)\.system', which is not allowed"):
        read_state_dict(path)
    assert not marker.exists()


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("keep", [0.3, 0.9, 0.999])
def test_truncated_checkpoint_names_the_file(tmp_path, fmt, keep):
    torch = _torch()
    path = tmp_path / "full.pt"
    torch.save({"w": torch.randn(64, 64), "b": torch.randn(64)}, path, **fmt)
    data = path.read_bytes()
    cut = tmp_path / "cut.pt"
    cut.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(ModelFormatError, match="cut.pt"):
        read_state_dict(cut)


def test_not_a_checkpoint(tmp_path):
    path = tmp_path / "notes.pt"
    path.write_text("hello")
    with pytest.raises(ModelFormatError, match="notes.pt"):
        read_state_dict(path)
    with pytest.raises(ModelFormatError, match="not found"):
        read_state_dict(tmp_path / "missing.pt")


# ----------------------------------------------------------------------------- arch spec

def _lenet5(seed: int = 0):
    """The sample_models/lenet5.npz architecture as a torch module."""
    nn = _torch().nn
    _torch().manual_seed(seed)

    class LeNet5(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(),
                                          nn.MaxPool2d(2), nn.Conv2d(6, 16, 5), nn.ReLU(),
                                          nn.MaxPool2d(2))
            self.classifier = nn.Sequential(nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84),
                                            nn.ReLU(), nn.Linear(84, 10))

        def forward(self, x):
            return self.classifier(self.features(x).flatten(1))

    return LeNet5().eval()


@pytest.mark.parametrize("fmt", FORMATS)
def test_lenet5_state_dict_matches_torch(tmp_path, fmt):
    torch = _torch()
    net = _lenet5()
    path = tmp_path / "lenet5.pt"
    torch.save(net.state_dict(), path, **fmt)
    model = import_torch(path, LENET_SPEC)
    x = np.random.default_rng(0).standard_normal((5, 1, 28, 28)).astype(np.float32)
    with torch.no_grad():
        want = net(torch.from_numpy(x)).numpy()
    for kernels in ("reference", "fast"):
        got = Runtime(model, kernels).run({"image": x})["logits"]
        np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)
    assert model.graph.outputs[0].shape == ("batch", 10)
    assert model.provenance["unused_state_dict_keys"] == []


def _spec(tmp_path: Path, old: str, new: str) -> Path:
    text = LENET_SPEC.read_text()
    assert old in text
    p = tmp_path / "spec.yaml"
    p.write_text(text.replace(old, new))
    return p


@pytest.fixture
def lenet_pt(tmp_path) -> Path:
    torch = _torch()
    path = tmp_path / "lenet5.pt"
    sd = _lenet5().state_dict()
    sd["aux.weight"] = torch.zeros(3)
    torch.save(sd, path)
    return path


def test_spec_errors_name_the_key_and_line(tmp_path, lenet_pt):
    bad = _spec(tmp_path, "features.3.weight", "features.3.weigth")
    with pytest.raises(ConfigError, match=r"spec.yaml:\d+: layers\[3\]\.conv2d\.weight: "
                       r"state-dict key 'features.3.weigth' is not in lenet5.pt; "
                       r"close matches: features.3.weight"):
        import_torch(lenet_pt, bad)
    bad = _spec(tmp_path, "padding: 2}", "padding: 0}")
    with pytest.raises(ConfigError, match=r"layers\[7\]\.linear: layer 'fc1' does not fit"):
        import_torch(lenet_pt, bad)
    bad = _spec(tmp_path, "- flatten: {}", "- flaten: {}")
    with pytest.raises(ConfigError, match="did you mean 'flatten'"):
        import_torch(lenet_pt, bad)
    bad = _spec(tmp_path, "kernel: 2}", "kernal: 2}")
    with pytest.raises(ConfigError, match=r"layers\[2\]\.maxpool2d\.kernal: unknown key"):
        import_torch(lenet_pt, bad)


def test_unused_keys_are_listed(lenet_pt):
    model = import_torch(lenet_pt, LENET_SPEC)
    assert model.provenance["unused_state_dict_keys"] == ["aux.weight"]
