"""Seeded small models and files shared by the tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from optcli.builder import GraphBuilder
from optcli.graph import Model
from optcli.io import save_model

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "sample_models"


def make_mlp(seed: int = 0, sizes: tuple[int, ...] = (64, 32, 16, 10)) -> Model:
    """An MLP over [batch, 1, 8, 8] images (sizes[0] must be 64)."""
    rng = np.random.default_rng(seed)
    b = GraphBuilder("mlp", task={"kind": "classification"})
    h = b.add("flatten", x=b.input("image", ["batch", 1, 8, 8], meaning="image_nchw"))
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:]), start=1):
        w = (rng.standard_normal((n_out, n_in)) / np.sqrt(n_in)).astype(np.float32)
        bias = (0.1 * rng.standard_normal(n_out)).astype(np.float32)
        h = b.add("linear", name=f"fc{i}", x=h, weight=b.weight(f"fc{i}.weight", w),
                  bias=b.weight(f"fc{i}.bias", bias))
        if i < len(sizes) - 1:
            h = b.add("relu", x=h)
    b.output(h, "logits", ["batch", sizes[-1]], meaning="logits")
    return b.build()


def make_cnn(seed: int = 0) -> Model:
    """conv(1->4, 3x3, pad 1) -> relu -> maxpool 2 -> flatten -> linear(64 -> 10)."""
    rng = np.random.default_rng(seed)
    b = GraphBuilder("cnn", task={"kind": "classification"})
    x = b.input("image", ["batch", 1, 8, 8], meaning="image_nchw")
    h = b.add("conv2d", name="conv1", x=x, attrs={"padding": 1},
              weight=b.weight("conv1.weight", rng.standard_normal((4, 1, 3, 3)).astype("f4")),
              bias=b.weight("conv1.bias", rng.standard_normal(4).astype("f4")))
    h = b.add("maxpool2d", x=b.add("relu", x=h), attrs={"kernel": 2})
    h = b.add("linear", name="fc", x=b.add("flatten", x=h),
              weight=b.weight("fc.weight", rng.standard_normal((10, 64)).astype("f4") / 8))
    b.output(h, "logits", ["batch", 10], meaning="logits")
    return b.build()


def make_lm(seed: int = 0, vocab: int = 20, d: int = 16, heads: int = 2, ctx: int = 32) -> Model:
    """A one-block pre-LN causal transformer LM over token ids."""
    rng = np.random.default_rng(seed)
    r = lambda *s: (0.3 * rng.standard_normal(s)).astype(np.float32)  # noqa: E731
    b = GraphBuilder("lm", task={"kind": "language_model"})
    ids = b.input("ids", ["batch", "seq"], dtype="int64", meaning="token_ids")
    h = b.add("add", a=b.add("embedding", ids=ids, weight=b.weight("tok", r(vocab, d))),
              b=b.add("embedding", ids=b.add("positions", ids=ids),
                      weight=b.weight("pos", r(ctx, d))))
    ln = b.add("layernorm", x=h, weight=b.weight("ln.w", 1 + r(d)), bias=b.weight("ln.b", r(d)))
    qkv = {k: b.add("linear", name=f"attn.{k}", x=ln, weight=b.weight(f"attn.{k}.w", r(d, d)))
           for k in "qkv"}
    a = b.add("attention", attrs={"num_heads": heads, "causal": True}, **qkv)
    h = b.add("add", a=h, b=b.add("linear", name="attn.o", x=a,
                                 weight=b.weight("attn.o.w", r(d, d))))
    f = b.add("gelu", x=b.add("linear", name="mlp.up", x=h, weight=b.weight("up", r(4 * d, d))))
    h = b.add("add", a=h, b=b.add("linear", name="mlp.down", x=f,
                                 weight=b.weight("down", r(d, 4 * d))))
    out = b.add("linear", name="head", x=h, weight=b.weight("head.w", r(vocab, d)))
    b.output(out, "logits", ["batch", "seq", vocab], meaning="logits")
    return b.build()


@pytest.fixture
def mlp() -> Model:
    return make_mlp()


@pytest.fixture
def mlp_path(tmp_path: Path, mlp: Model) -> Path:
    p = tmp_path / "mlp.npz"
    save_model(mlp, p)
    return p


@pytest.fixture
def mlp_data(tmp_path: Path) -> Path:
    rng = np.random.default_rng(1)
    p = tmp_path / "data.npz"
    np.savez(p, image=rng.standard_normal((40, 1, 8, 8)).astype(np.float32),
             labels=rng.integers(0, 10, 40))
    return p


def stored_arrays(model: Model) -> dict[str, dict[str, np.ndarray]]:
    """Copies of every stored array, to check later that a step did not mutate its input."""
    return {n: {k: a.copy() for k, a in t.arrays().items()} for n, t in model.tensors.items()}


def write_yaml(path: Path, text: str) -> Path:
    path.write_text(text)
    return path
