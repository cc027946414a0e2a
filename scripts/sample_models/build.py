"""One sample model end to end: train (or load), export, verify, evaluate, save.

Each `run_*` returns the model's entry in the JSON summary that the entry point prints. The
evaluation figure measured with optcli's fast runtime is written into `provenance.evaluation`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from optcli.io import save_model

from .charlm import CharLM, char_vocab, encode, export_charlm, load_devil_text, windows
from .fashion import LeNet5, LeNet300, export_lenet5, export_lenet300, load_fashion
from .progress import log
from .recipes import RECIPES
from .train import train_charlm, train_classifier, trained
from .verify import accuracy, optcli_outputs, perplexity, torch_outputs, verify


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
