"""Train the small real models in `sample_models/` and write them as optcli files.

A development script, never imported by optcli (it and its package `scripts/sample_models/` are
the only places torch is used). It trains on real data, on the CPU, seeded, and writes each model
through optcli's own `GraphBuilder` and `save_model`, after checking that optcli's reference and
fast runtimes reproduce torch's outputs.

    apt-get install dataset-fashion-mnist dict-devil
    pip install torch==2.13.0 && pip install -e .
    python scripts/train_sample_models.py                 # everything, into sample_models/
    python scripts/train_sample_models.py --only charlm   # one model (plus its data files)

Models (see sample_models/README.md for the measured figures):
- lenet300: LeNet-300-100 MLP on Fashion-MNIST (LeCun et al. 1998; the pruning papers' MLP);
- lenet5:   LeNet-5-style CNN on Fashion-MNIST;
- charlm:   a 2-block pre-LN character-level GPT on The Devil's Dictionary (Bierce, 1911).
Both image models take raw pixels 0..255: normalisation is the first two graph nodes.
Progress goes to stderr, the summary (JSON) to stdout. This file only parses the arguments and
runs the steps; the code is in `scripts/sample_models/` (see its `__init__.py` for the map).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from sample_models.build import run_charlm, run_image
from sample_models.fashion import write_fashion_data
from sample_models.progress import log
from sample_models.recipes import RECIPES


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
