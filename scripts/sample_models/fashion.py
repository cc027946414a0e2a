"""Fashion-MNIST: the IDX files, the data files, LeNet-300-100 and LeNet-5, and their export.

Data come from the Debian package `dataset-fashion-mnist` (`apt-get install dataset-fashion-mnist`).
Both classifiers take raw pixels 0..255: `(x/255 - MEAN)/STD` is folded into one scale and one
shift, which become the first two graph nodes (`preprocess.mul`, `preprocess.add`).

- lenet300: LeNet-300-100 MLP (LeCun et al. 1998; the pruning papers' MLP), 784→300→100→10;
- lenet5:   LeNet-5-style CNN, conv 6 and 16 channels 5×5 with max-pool 2, then 400→120→84→10.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from optcli.builder import GraphBuilder
from optcli.graph import Model

from .export import add_conv, add_linear, np32
from .recipes import SOURCE, Recipe

FASHION = Path("/usr/share/datasets/fashion-mnist")
LABELS = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
          "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
MEAN, STD = 0.2860, 0.3530          # Fashion-MNIST train-split pixel statistics (of x/255)
EVAL_MAX_BYTES = 4_500_000           # fashion_eval.npz: all 10k images if it fits, else 5k


# ----------------------------------------------------------------------------- data

def read_idx(path: Path) -> np.ndarray:
    """An IDX file (big-endian header: magic, then one uint32 per dim) as a uint8 array."""
    raw = gzip.open(path).read()
    ndim = raw[3]
    dims = np.frombuffer(raw, ">u4", count=ndim, offset=4)
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_fashion(split: str) -> tuple[np.ndarray, np.ndarray]:
    """images uint8 [N, 1, 28, 28], labels int64 [N] of split 'train' or 't10k'."""
    x = read_idx(FASHION / f"{split}-images-idx3-ubyte.gz")[:, None]
    y = read_idx(FASHION / f"{split}-labels-idx1-ubyte.gz").astype(np.int64)
    return x.copy(), y


def write_fashion_data(out: Path) -> dict:
    """Eval (genuine t10k), calibration (512 train images) and a 6k train subset for tuning."""
    xt, yt = load_fashion("t10k")
    x, y = load_fashion("train")
    pick = np.random.default_rng(0).permutation(len(x))
    np.savez_compressed(out / "fashion_eval.npz", image=xt, labels=yt)
    if (out / "fashion_eval.npz").stat().st_size > EVAL_MAX_BYTES:
        np.savez_compressed(out / "fashion_eval.npz", image=xt[:5000], labels=yt[:5000])
    calib, small = np.sort(pick[:512]), np.sort(pick[512:6512])
    np.savez_compressed(out / "fashion_calib.npz", image=x[calib], labels=y[calib])
    np.savez_compressed(out / "fashion_train_small.npz", image=x[small], labels=y[small])
    return {f: (out / f).stat().st_size for f in
            ("fashion_eval.npz", "fashion_calib.npz", "fashion_train_small.npz")}


# ----------------------------------------------------------------------------- torch models

class Preprocess(nn.Module):
    """Raw pixels 0..255 -> (x/255 - MEAN)/STD, folded into one scale and one shift."""

    def __init__(self):
        super().__init__()
        self.register_buffer("scale", torch.tensor([1.0 / (255.0 * STD)]))
        self.register_buffer("shift", torch.tensor([-MEAN / STD]))

    def forward(self, x):
        return x * self.scale + self.shift


class LeNet300(nn.Module):
    def __init__(self):
        super().__init__()
        self.pre = Preprocess()
        self.fc1, self.fc2, self.fc3 = nn.Linear(784, 300), nn.Linear(300, 100), nn.Linear(100, 10)

    def forward(self, x):                       # x [B, 1, 28, 28] raw pixels
        h = self.pre(x).flatten(1)              # [B, 784]
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(h)))))


class LeNet5(nn.Module):
    def __init__(self):
        super().__init__()
        self.pre = Preprocess()
        self.conv1, self.conv2 = nn.Conv2d(1, 6, 5, padding=2), nn.Conv2d(6, 16, 5)
        self.fc1, self.fc2, self.fc3 = nn.Linear(400, 120), nn.Linear(120, 84), nn.Linear(84, 10)

    def forward(self, x):                                      # [B, 1, 28, 28]
        h = F.max_pool2d(F.relu(self.conv1(self.pre(x))), 2)   # [B, 6, 14, 14]
        h = F.max_pool2d(F.relu(self.conv2(h)), 2).flatten(1)  # [B, 16, 5, 5] -> [B, 400]
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(h)))))


# ----------------------------------------------------------------------------- export

def image_builder(name: str, arch: str, r: Recipe, pre: Preprocess) -> tuple[GraphBuilder, str]:
    """Builder with the `image` input and the in-graph normalisation (mul, add) already added."""
    task = {"kind": "classification", "labels": LABELS, "architecture": arch,
            "preprocessing": {"input": "raw pixels 0..255, uint8 or float",
                              "normalize": f"x/255, (x-{MEAN})/{STD} (inside the graph, "
                                           "folded into preprocess.scale and preprocess.shift)"}}
    prov = {"source": SOURCE, "training": r.record(),
            "dataset": "Fashion-MNIST train split (60k)"}
    b = GraphBuilder(name, task=task, provenance=prov)
    x = b.input("image", ["batch", 1, 28, 28], meaning="image_nchw")
    x = b.add("mul", name="preprocess.mul", a=x, b=b.weight("preprocess.scale", np32(pre.scale)))
    return b, b.add("add", name="preprocess.add", a=x,
                    b=b.weight("preprocess.shift", np32(pre.shift)))


def classifier_head(b: GraphBuilder, h: str, net: nn.Module) -> Model:
    """fc1 -> relu -> fc2 -> relu -> fc3 = logits, shared by both LeNets."""
    h = b.add("relu", name="relu_fc1", x=add_linear(b, h, "fc1", net.fc1))
    h = b.add("relu", name="relu_fc2", x=add_linear(b, h, "fc2", net.fc2))
    b.output(add_linear(b, h, "fc3", net.fc3), "logits", ["batch", 10], meaning="logits")
    return b.build()


def export_lenet300(net: LeNet300, r: Recipe) -> Model:
    b, h = image_builder("lenet300", "LeNet-300-100 MLP", r, net.pre)
    return classifier_head(b, b.add("flatten", name="flatten", x=h), net)


def export_lenet5(net: LeNet5, r: Recipe) -> Model:
    b, h = image_builder("lenet5", "LeNet-5-style CNN", r, net.pre)
    for i, conv in ((1, net.conv1), (2, net.conv2)):
        h = b.add("relu", name=f"relu_conv{i}", x=add_conv(b, h, f"conv{i}", conv))
        h = b.add("maxpool2d", name=f"pool{i}", x=h, attrs={"kernel": 2})
    return classifier_head(b, b.add("flatten", name="flatten", x=h), net)
