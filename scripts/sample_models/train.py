"""Training loops of the sample models, and the `--state-dir` cache of trained torch weights.

All training is on the CPU and seeded (`Recipe.seed` drives the torch generator that draws the
batches). `trained` either runs a loop or, when the cache holds `{name}.pt`, loads it instead,
so that a second run re-exports and re-checks without retraining.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .charlm import CONTEXT, CharLM
from .progress import log
from .recipes import Recipe


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
