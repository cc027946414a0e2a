"""Train the small real models in `sample_models/` and write them as optcli files.

A development script, never imported by optcli (it is the only place torch is used). It trains
on real data, on the CPU, seeded, and writes each model through optcli's own `GraphBuilder` and
`save_model`, after checking that optcli's reference and fast runtimes reproduce torch's outputs.

    apt-get install dataset-fashion-mnist dict-devil
    pip install torch==2.13.0 && pip install -e .
    python scripts/train_sample_models.py                 # everything, into sample_models/
    python scripts/train_sample_models.py --only charlm   # one model (plus its data files)

Models (see sample_models/README.md for the measured figures):
- lenet300: LeNet-300-100 MLP on Fashion-MNIST (LeCun et al. 1998; the pruning papers' MLP);
- lenet5:   LeNet-5-style CNN on Fashion-MNIST;
- charlm:   a 2-block pre-LN character-level GPT on The Devil's Dictionary (Bierce, 1911).
Both image models take raw pixels 0..255: normalisation is the first two graph nodes.
Progress goes to stderr, the summary (JSON) to stdout.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from optcli.builder import GraphBuilder
from optcli.graph import Model
from optcli.io import save_model
from optcli.runtime import Runtime

FASHION = Path("/usr/share/datasets/fashion-mnist")
DEVIL = Path("/usr/share/dictd/devil.dict.dz")
LABELS = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
          "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
MEAN, STD = 0.2860, 0.3530          # Fashion-MNIST train-split pixel statistics (of x/255)
CONTEXT = 128                        # charlm context length (learned positions)
MIN_CHAR_COUNT = 5                   # rarer characters map to the unknown id
UNK = "\ufffd"                       # the unknown id's entry in the vocabulary
EVAL_MAX_BYTES = 4_500_000           # fashion_eval.npz: all 10k images if it fits, else 5k
TOLERANCE = 1e-4                     # max |optcli - torch| relative to max |torch|


@dataclass(frozen=True)
class Recipe:
    optimizer: str
    lr: float
    batch_size: int
    seed: int
    epochs: int | None = None        # the LeNets train by epochs ...
    steps: int | None = None         # ... charlm by steps (cosine schedule)
    weight_decay: float = 0.0
    dropout: float = 0.0

    def record(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}


RECIPES = {
    "lenet300": Recipe("Adam", lr=1e-3, batch_size=128, seed=0, epochs=12),
    "lenet5": Recipe("Adam", lr=1e-3, batch_size=128, seed=0, epochs=12),
    # lr 6e-3 / dropout 0.05 beat 4e-3 and dropout 0 / 0.1 on held-out perplexity (5.09-5.32)
    "charlm": Recipe("AdamW, betas (0.9, 0.95), cosine LR, 100 warm-up steps, clip 1.0",
                     lr=6e-3, batch_size=32, seed=0, steps=2000, weight_decay=0.1,
                     dropout=0.05),
}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


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


def load_devil_text() -> str:
    """The dictionary proper: dictfmt's header entries and trailing alphabet line dropped."""
    text = gzip.open(DEVIL).read().decode("latin-1")
    text = text[text.index("ABASEMENT, n."):].rstrip()
    if text.endswith("abcdefghijklmnopqrstuvwxyz"):
        text = text[:text.rindex("\n") + 1]
    return text


def char_vocab(text: str) -> tuple[list[str], int]:
    """Characters seen >= MIN_CHAR_COUNT times (sorted) plus one unknown entry at the end."""
    vocab = sorted(c for c, n in Counter(text).items() if n >= MIN_CHAR_COUNT)
    return vocab + [UNK], len(vocab)


def encode(text: str, vocab: list[str], unk_id: int) -> np.ndarray:
    index = {c: i for i, c in enumerate(vocab[:unk_id])}
    return np.array([index.get(c, unk_id) for c in text], dtype=np.int64)


def windows(ids: np.ndarray, n: int) -> np.ndarray:
    """n non-overlapping [CONTEXT] windows spread evenly over ids -> int64 [n, CONTEXT]."""
    starts = np.linspace(0, len(ids) - CONTEXT, n).astype(int)
    assert np.all(np.diff(starts) >= CONTEXT), "text too short for non-overlapping windows"
    return np.stack([ids[s:s + CONTEXT] for s in starts])


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


class Block(nn.Module):
    """Pre-LN transformer block: x + attn(ln1(x)), then + mlp(ln2(x))."""

    def __init__(self, d: int, heads: int, dropout: float):
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.q, self.k, self.v, self.out = (nn.Linear(d, d) for _ in range(4))
        self.fc, self.proj = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)
        self.drop = nn.Dropout(dropout)

    def attention(self, x):                     # x [B, T, D] -> [B, T, D]
        B, T, D = x.shape
        split = lambda t: t.view(B, T, self.heads, D // self.heads).transpose(1, 2)  # noqa: E731
        y = F.scaled_dot_product_attention(split(self.q(x)), split(self.k(x)),
                                           split(self.v(x)), is_causal=True)  # [B, H, T, Dh]
        return self.out(y.transpose(1, 2).reshape(B, T, D))

    def forward(self, x):
        x = x + self.drop(self.attention(self.ln1(x)))
        return x + self.drop(self.proj(F.gelu(self.fc(self.ln2(x)))))


class CharLM(nn.Module):
    def __init__(self, vocab: int, d: int = 128, layers: int = 2, heads: int = 4,
                 dropout: float = 0.1):
        super().__init__()
        self.heads = heads
        self.tok, self.pos = nn.Embedding(vocab, d), nn.Embedding(CONTEXT, d)
        self.blocks = nn.ModuleList(Block(d, heads, dropout) for _ in range(layers))
        self.ln_f, self.head = nn.LayerNorm(d), nn.Linear(d, vocab)
        self.drop = nn.Dropout(dropout)

    def forward(self, ids):                     # ids [B, T] -> logits [B, T, V]
        h = self.drop(self.tok(ids) + self.pos(torch.arange(ids.shape[1])))
        for blk in self.blocks:
            h = blk(h)
        return self.head(self.ln_f(h))


# ----------------------------------------------------------------------------- training

def train_classifier(net: nn.Module, x: np.ndarray, y: np.ndarray, r: Recipe) -> None:
    """Plain Adam epochs over shuffled mini-batches of raw uint8 pixels."""
    opt = torch.optim.Adam(net.parameters(), lr=r.lr)
    xt, yt = torch.from_numpy(x).float(), torch.from_numpy(y)
    gen = torch.Generator().manual_seed(r.seed)
    net.train()
    for epoch in range(r.epochs):
        total = 0.0
        for idx in torch.randperm(len(xt), generator=gen).split(r.batch_size):
            loss = F.cross_entropy(net(xt[idx]), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        log(f"  epoch {epoch + 1}/{r.epochs}  train loss {total / len(xt):.4f}")
    net.eval()


def cosine_lr(step: int, r: Recipe, warmup: int = 100) -> float:
    if step < warmup:
        return r.lr * (step + 1) / warmup
    return 0.5 * r.lr * (1 + math.cos(math.pi * (step - warmup) / (r.steps - warmup)))


def train_charlm(net: CharLM, ids: np.ndarray, r: Recipe) -> None:
    """AdamW on random [CONTEXT + 1] slices; weight decay on matrices only (nanoGPT's rule)."""
    decay = [p for p in net.parameters() if p.dim() >= 2]
    other = [p for p in net.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": r.weight_decay},
                             {"params": other, "weight_decay": 0.0}], lr=r.lr, betas=(0.9, 0.95))
    data = torch.from_numpy(ids)
    gen = torch.Generator().manual_seed(r.seed)
    net.train()
    for step in range(r.steps):
        starts = torch.randint(0, len(data) - CONTEXT - 1, (r.batch_size,), generator=gen)
        batch = torch.stack([data[s:s + CONTEXT + 1] for s in starts])   # [B, T + 1]
        logits = net(batch[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1))
        for g in opt.param_groups:
            g["lr"] = cosine_lr(step, r)
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        if step % 200 == 0 or step == r.steps - 1:
            log(f"  step {step}/{r.steps}  train loss {loss.item():.4f}")
    net.eval()


def trained(net: nn.Module, name: str, train_fn, state_dir: Path | None) -> float | None:
    """Train `net` (or load its cached state from state_dir); returns training seconds."""
    cached = state_dir / f"{name}.pt" if state_dir else None
    if cached is not None and cached.exists():
        net.load_state_dict(torch.load(cached))
        net.eval()
        log(f"{name}: loaded cached state {cached}")
        return None
    t0 = time.perf_counter()
    train_fn()
    seconds = time.perf_counter() - t0
    log(f"{name}: trained in {seconds:.0f} s")
    if cached is not None:
        state_dir.mkdir(parents=True, exist_ok=True)
        torch.save(net.state_dict(), cached)
    return seconds


# ----------------------------------------------------------------------------- export

def np32(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy().astype(np.float32)


def add_linear(b: GraphBuilder, x: str, name: str, m: nn.Linear) -> str:
    return b.add("linear", name=name, x=x, weight=b.weight(f"{name}.weight", np32(m.weight)),
                 bias=b.weight(f"{name}.bias", np32(m.bias)))


def add_conv(b: GraphBuilder, x: str, name: str, m: nn.Conv2d) -> str:
    return b.add("conv2d", name=name, x=x, attrs={"padding": m.padding[0]},
                 weight=b.weight(f"{name}.weight", np32(m.weight)),
                 bias=b.weight(f"{name}.bias", np32(m.bias)))


def add_layernorm(b: GraphBuilder, x: str, name: str, m: nn.LayerNorm) -> str:
    return b.add("layernorm", name=name, x=x, attrs={"eps": m.eps},
                 weight=b.weight(f"{name}.weight", np32(m.weight)),
                 bias=b.weight(f"{name}.bias", np32(m.bias)))


def image_builder(name: str, arch: str, r: Recipe, pre: Preprocess) -> tuple[GraphBuilder, str]:
    """Builder with the `image` input and the in-graph normalisation (mul, add) already added."""
    task = {"kind": "classification", "labels": LABELS, "architecture": arch,
            "preprocessing": {"input": "raw pixels 0..255, uint8 or float",
                              "normalize": f"x/255, (x-{MEAN})/{STD} (inside the graph, "
                                           "folded into preprocess.scale and preprocess.shift)"}}
    prov = {"source": "scripts/train_sample_models.py", "training": r.record(),
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


def export_block(b: GraphBuilder, h: str, p: str, blk: Block) -> str:
    """One pre-LN block as optcli nodes named after the torch modules (`blocks.0.attn.q`)."""
    x = add_layernorm(b, h, f"{p}.ln1", blk.ln1)
    qkv = {role: add_linear(b, x, f"{p}.attn.{role}", getattr(blk, role)) for role in "qkv"}
    a = b.add("attention", name=f"{p}.attn", attrs={"num_heads": blk.heads, "causal": True}, **qkv)
    h = b.add("add", name=f"{p}.res1", a=h, b=add_linear(b, a, f"{p}.attn.out", blk.out))
    x = add_layernorm(b, h, f"{p}.ln2", blk.ln2)
    x = b.add("gelu", name=f"{p}.mlp.gelu", x=add_linear(b, x, f"{p}.mlp.fc", blk.fc))
    return b.add("add", name=f"{p}.res2", a=h, b=add_linear(b, x, f"{p}.mlp.proj", blk.proj))


def export_charlm(net: CharLM, r: Recipe, vocab: list[str], unk_id: int, info: dict) -> Model:
    task = {"kind": "language_model", "architecture": "pre-LN GPT, character level",
            "context_length": CONTEXT, "vocab_size": len(vocab)}
    prov = {"source": "scripts/train_sample_models.py", "training": r.record(), **info}
    extra = {"tokenizer": {"kind": "char", "vocab": vocab, "unk_id": unk_id}}
    b = GraphBuilder("charlm", task=task, provenance=prov, extra=extra)
    ids = b.input("ids", ["batch", "seq"], dtype="int64", meaning="token_ids")
    tok = b.add("embedding", name="tok_emb", ids=ids, weight=b.weight("tok_emb.weight",
                                                                     np32(net.tok.weight)))
    pos = b.add("positions", name="positions", ids=ids)
    pos = b.add("embedding", name="pos_emb", ids=pos, weight=b.weight("pos_emb.weight",
                                                                     np32(net.pos.weight)))
    h = b.add("add", name="embed", a=tok, b=pos)                       # [B, T, D]
    for i, blk in enumerate(net.blocks):
        h = export_block(b, h, f"blocks.{i}", blk)
    h = add_linear(b, add_layernorm(b, h, "ln_f", net.ln_f), "head", net.head)
    b.output(h, "logits", ["batch", "seq", len(vocab)], meaning="logits")
    return b.build()


# ----------------------------------------------------------------------------- checks

def torch_outputs(net: nn.Module, x: np.ndarray, batch: int = 1000) -> np.ndarray:
    with torch.no_grad():
        xt = torch.from_numpy(x if x.dtype == np.int64 else x.astype(np.float32))
        return torch.cat([net(c) for c in xt.split(batch)]).numpy()


def optcli_outputs(model: Model, x: np.ndarray, kernels: str = "fast",
                   batch: int = 1000) -> np.ndarray:
    rt, key = Runtime(model, kernels=kernels), model.graph.inputs[0].name
    return np.concatenate([rt.run({key: x[i:i + batch]})["logits"]
                           for i in range(0, len(x), batch)])


def verify(model: Model, net: nn.Module, x: np.ndarray) -> dict[str, float]:
    """Max |optcli - torch| / max |torch| on x, per kernel set; exits on a mismatch."""
    want = torch_outputs(net, x)
    diffs = {}
    for kernels in ("reference", "fast"):
        got = optcli_outputs(model, x, kernels)
        diffs[kernels] = float(np.abs(got - want).max() / np.abs(want).max())
    log(f"{model.name}: relative max diff vs torch {diffs}")
    if max(diffs.values()) > TOLERANCE:
        sys.exit(f"{model.name}: optcli output differs from torch ({diffs}); not saved")
    return diffs


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    return float((logits.argmax(-1) == labels).mean())


def perplexity(logits: np.ndarray, ids: np.ndarray) -> float:
    """Per-character perplexity of ids[:, 1:] given logits[:, :-1] (float64 log-softmax)."""
    z = logits[:, :-1].astype(np.float64)
    z = z - z.max(-1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
    nll = -np.take_along_axis(logp, ids[:, 1:, None], -1)
    return float(np.exp(nll.mean()))


# ----------------------------------------------------------------------------- runs

def run_image(name: str, out: Path, state_dir: Path | None) -> dict:
    r = RECIPES[name]
    torch.manual_seed(r.seed)
    net, export = (LeNet300(), export_lenet300) if name == "lenet300" else (LeNet5(), export_lenet5)
    x, y = load_fashion("train")
    xt, yt = load_fashion("t10k")
    seconds = trained(net, name, lambda: train_classifier(net, x, y, r), state_dir)
    model = export(net, r)
    diffs = verify(model, net, xt[:64])
    acc = {"torch": accuracy(torch_outputs(net, xt), yt),
           "optcli_fast": accuracy(optcli_outputs(model, xt), yt)}
    log(f"{name}: test accuracy {acc}")
    model = model.replace(provenance={**model.provenance, "evaluation": {
        "split": "Fashion-MNIST t10k (10k)", "accuracy": acc["optcli_fast"]}})
    size = save_model(model, out / f"{name}.npz", force=True)
    return {"train_seconds": seconds, "test_accuracy": acc, "max_rel_diff": diffs,
            "bytes": size, "params": sum(p.numel() for p in net.parameters())}


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


def run_charlm(out: Path, state_dir: Path | None) -> dict:
    r = RECIPES["charlm"]
    torch.manual_seed(r.seed)
    text = load_devil_text()
    vocab, unk_id = char_vocab(text)
    ids = encode(text, vocab, unk_id)
    cut = int(0.9 * len(ids))                       # the last 10 % is held out
    held, calib = windows(ids[cut:], 64), windows(ids[:cut], 32)
    net = CharLM(len(vocab), dropout=r.dropout)
    seconds = trained(net, "charlm", lambda: train_charlm(net, ids[:cut], r), state_dir)
    info = {"dataset": f"The Devil's Dictionary (dict-devil), first 90 % ({cut} chars)"}
    model = export_charlm(net, r, vocab, unk_id, info)
    diffs = verify(model, net, held[:4])
    ppl = {"torch": perplexity(torch_outputs(net, held), held),
           "optcli_fast": perplexity(optcli_outputs(model, held), held)}
    log(f"charlm: held-out perplexity {ppl}")
    model = model.replace(provenance={**model.provenance, "evaluation": {
        "split": "charlm_eval.npz (64 held-out windows)", "perplexity": ppl["optcli_fast"]}})
    size = save_model(model, out / "charlm.npz", force=True)
    np.savez_compressed(out / "charlm_eval.npz", ids=held)
    np.savez_compressed(out / "charlm_calib.npz", ids=calib)
    return {"train_seconds": seconds, "perplexity": ppl, "max_rel_diff": diffs, "bytes": size,
            "params": sum(p.numel() for p in net.parameters()), "vocab": len(vocab),
            "train_chars": cut, "heldout_chars": len(ids) - cut}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("sample_models"))
    ap.add_argument("--only", choices=[*RECIPES, "data"], action="append",
                    help="build only this model (repeatable); 'data' = the Fashion data files")
    ap.add_argument("--state-dir", type=Path, default=None,
                    help="cache trained torch state here and reuse it when present")
    args = ap.parse_args(argv)
    torch.set_num_threads(2)
    args.out.mkdir(parents=True, exist_ok=True)
    todo = args.only or [*RECIPES, "data"]
    summary = {}
    for name in todo:
        log(f"== {name}")
        if name == "data":
            summary[name] = write_fashion_data(args.out)
        elif name == "charlm":
            summary[name] = run_charlm(args.out, args.state_dir)
        else:
            summary[name] = run_image(name, args.out, args.state_dir)
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
