"""SmolLM2-135M-Instruct (Q4_1 GGUF): optcli's import against transformers loading the same file.

    python scripts/fetch_real_models.py --only smollm2        # once: real_models/smollm2/
    pip install torch transformers accelerate gguf tokenizers  # the reference side
    python benchmarks/real_models_smollm2.py                   # table on stdout
    python benchmarks/real_models_smollm2.py --tokens 512 --new-tokens 10 --json

What it measures:
- import: `optcli.interop.gguf_import.import_gguf` wall time, its peak NumPy heap
  (tracemalloc) and the process's peak RSS right after it (before torch is imported);
- perplexity on the first `--tokens` tokens of /usr/share/common-licenses/GPL-3, one window,
  tokenized once by the tokenizer rebuilt from the GGUF and fed to both models;
- greedy continuation of "The capital of France is" (`--new-tokens`), compared token for token.

The reference is `AutoModelForCausalLM.from_pretrained(dir, gguf_file=name)`: transformers
dequantizes with the `gguf` package and un-permutes q/k, then runs its own LLaMA in float32.
Both sides compute in float32 from the same dequantized values, so they should agree to
rounding. Note: these weights already sit on a 4-bit grid (Q4_1 blocks of 32 with an f16
scale and minimum; the embedding/tied head is Q8_0). "fp32" here means those grid values in
float32, not the original bf16 checkpoint, and 8-bit results on top of this model re-quantize
already-quantized weights.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from optcli.interop.gguf_import import import_gguf  # noqa: E402
from optcli.text.generate import greedy  # noqa: E402
from optcli.text.perplexity import perplexity  # noqa: E402
from optcli.text.tokenizer import load_tokenizer  # noqa: E402

GGUF = ROOT / "real_models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
TEXT = Path("/usr/share/common-licenses/GPL-3")
PROMPT = "The capital of France is"


def optcli_side(ids_text: str, n_tokens: int, new_tokens: int) -> dict:
    tracemalloc.start()
    t0 = time.perf_counter()
    model = import_gguf(GGUF)
    import_s = time.perf_counter() - t0
    heap_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    tok = load_tokenizer(model)
    ids = np.array(tok.encode(ids_text)[:n_tokens])
    t0 = time.perf_counter()
    ppl = perplexity(model, ids, window=n_tokens, stride=n_tokens)
    ppl_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    gen = greedy(model, tok.encode(PROMPT), new_tokens)
    return {"import_s": import_s, "import_heap_peak_mb": heap_peak / 2**20,
            "rss_after_import_mb": rss_mb, "params": sum(t.size for t in model.tensors.values()),
            "ids": ids, "prompt": tok.encode(PROMPT), "perplexity": ppl["perplexity"],
            "tokens_scored": ppl["tokens"], "ppl_s": ppl_s, "greedy": gen,
            "greedy_s": time.perf_counter() - t0, "decode": tok.decode}


def reference_side(ids: np.ndarray, prompt: list[int], new_tokens: int) -> dict:
    import torch
    from transformers import AutoModelForCausalLM
    t0 = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(GGUF.parent, gguf_file=GGUF.name,
                                                 dtype=torch.float32).eval()
    load_s = time.perf_counter() - t0
    with torch.no_grad():
        t0 = time.perf_counter()
        logits = model(torch.from_numpy(ids[None])).logits[0].double()
        nll = torch.nn.functional.cross_entropy(logits[:-1], torch.from_numpy(ids[1:]))
        ppl_s = time.perf_counter() - t0
        seq = list(prompt)
        for _ in range(new_tokens):                       # greedy, full recompute like optcli
            seq.append(int(model(torch.tensor([seq])).logits[0, -1].argmax()))
    return {"load_s": load_s, "perplexity": math.exp(float(nll)), "ppl_s": ppl_s,
            "greedy": seq[len(prompt):]}


def render(o: dict, r: dict) -> str:
    dec = o["decode"]
    rows = [("perplexity (%d tokens scored)" % o["tokens_scored"],
             f"{o['perplexity']:.4f}", f"{r['perplexity']:.4f}"),
            ("relative difference", f"{o['perplexity'] / r['perplexity'] - 1:+.3%}", ""),
            ("perplexity forward (s)", f"{o['ppl_s']:.1f}", f"{r['ppl_s']:.1f}"),
            ("greedy ids", str(o["greedy"]), str(r["greedy"])),
            ("greedy text", repr(dec(o["greedy"])), repr(dec(r["greedy"]))),
            ("greedy identical", str(o["greedy"] == r["greedy"]), ""),
            ("import / load (s)", f"{o['import_s']:.2f}", f"{r['load_s']:.2f}"),
            ("import peak NumPy heap (MB)", f"{o['import_heap_peak_mb']:.0f}", ""),
            ("peak RSS after import (MB)", f"{o['rss_after_import_mb']:.0f}", ""),
            ("parameters", f"{o['params']:,}", "")]
    width = max(len(a) for a, _, _ in rows)
    lines = [f"{'':{width}}  {'optcli':>24}  transformers (from GGUF)"]
    lines += [f"{a:{width}}  {b:>24}  {c}" for a, b, c in rows]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=512)
    ap.add_argument("--new-tokens", type=int, default=10)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if not GGUF.exists():
        sys.exit(f"{GGUF} missing: run python scripts/fetch_real_models.py --only smollm2")
    o = optcli_side(TEXT.read_text(), args.tokens, args.new_tokens)
    r = reference_side(o["ids"], o["prompt"], args.new_tokens)
    if args.json:
        keep = {k: v for k, v in o.items() if k not in ("ids", "decode", "prompt")}
        print(json.dumps({"optcli": keep, "transformers": r}, indent=2))
    else:
        print(render(o, r))


if __name__ == "__main__":
    main()
