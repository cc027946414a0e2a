"""The SmolLM2 perplexity task the language-model benchmarks share (not a benchmark itself).

SmolLM2-135M-Instruct (Q4_1 GGUF, fetched into real_models/smollm2 by
scripts/fetch_real_models.py), calibrated on CALIB_WINDOWS windows of CALIB_LEN tokens of
Apache-2.0 and evaluated on the first EVAL_TOKENS tokens of GPL-3 in one window (or, with
`eval_tokens`, on that many tokens in windows of EVAL_TOKENS).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from optcli.interop.gguf_import import import_gguf  # noqa: E402
from optcli.steps.base import StepContext  # noqa: E402
from optcli.text.perplexity import perplexity  # noqa: E402
from optcli.text.tokenizer import load_tokenizer  # noqa: E402

GGUF = ROOT / "real_models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
CALIB_TEXT = Path("/usr/share/common-licenses/Apache-2.0")
EVAL_TEXT = Path("/usr/share/common-licenses/GPL-3")
CALIB_WINDOWS, CALIB_LEN, EVAL_TOKENS = 16, 128, 256


def load_task(eval_tokens: int = EVAL_TOKENS):
    """(model, calibration StepContext, eval ids [eval_tokens], ppl(model) -> float)."""
    model = import_gguf(GGUF)
    tok = load_tokenizer(model, add_special_tokens=False)
    calib = tok.encode(CALIB_TEXT.read_text())
    need = CALIB_WINDOWS * CALIB_LEN
    if len(calib) < need:
        raise SystemExit(f"{CALIB_TEXT}: {len(calib)} tokens, need {need}")
    calib_ids = np.array(calib[:need], dtype=np.int64).reshape(CALIB_WINDOWS, CALIB_LEN)
    eval_ids = np.array(tok.encode(EVAL_TEXT.read_text())[:eval_tokens], dtype=np.int64)
    context = StepContext(seed=0, calibration=lambda: {"ids": calib_ids})

    def ppl(m) -> float:
        return perplexity(m, eval_ids, window=EVAL_TOKENS, stride=EVAL_TOKENS)["perplexity"]

    return model, context, eval_ids, ppl


def block_layers(blocks: int) -> list[str]:
    """Layer globs of the first `blocks` decoder blocks (30 = all)."""
    return ["layers.*"] if blocks >= 30 else [f"layers.{b}.*" for b in range(blocks)]
