"""Perplexity of a language model over a long token sequence, by strided sliding windows.

The evaluation Hugging Face documents ("Perplexity of fixed-length models",
huggingface.co/docs/transformers/perplexity): windows of up to `window` tokens start every
`stride` tokens; each window scores only the tokens the previous window did not, so every
token after the first is scored exactly once, with between window - stride and window - 1
tokens of context (all earlier tokens while the text is shorter than the window). One
deviation: the step is at most window - 1 (see `windows`), so that stride = window, too,
scores every token.

    report = perplexity(model, ids, window=512, stride=256)
    # {"tokens": 511, "nll": 2.93, "perplexity": 18.8, "windows": 2, "window": 512, ...}

stride = window gives disjoint windows (fastest, least context); a smaller stride costs
window / stride forward passes per scored window but gives each token more context.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from optcli.errors import DataError, InputError
from optcli.graph import Model
from optcli.progress import NoProgress, Progress
from optcli.runtime import Runtime


def token_nll(logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """-log softmax(logits)[target] per row: logits[n, V], targets[n] -> [n] (float64)."""
    z = logits.astype(np.float64)
    m = z.max(axis=1, keepdims=True)
    lse = np.log(np.exp(z - m).sum(axis=1)) + m[:, 0]
    return lse - z[np.arange(len(targets)), targets]


def lm_io(model: Model) -> tuple[str, str]:
    """(token-id input name, logits output name) of a language model graph."""
    outs = model.graph.outputs
    logits = next((o.name for o in outs if o.meaning == "logits"), outs[0].name)
    return model.graph.inputs[0].name, logits


def windows(n: int, window: int, stride: int) -> list[tuple[int, int, int]]:
    """(begin, end, first scored position) of each window over n tokens.

    A window of W tokens predicts at most W - 1 of them (its first has no context), so the
    step is min(stride, W - 1): with stride = W, HF's loop silently skips the first token of
    every window after the first; here consecutive windows overlap by one token instead."""
    out, prev_end = [], 0
    for begin in range(0, n, min(stride, window - 1)):
        end = min(begin + window, n)
        out.append((begin, end, max(prev_end, begin + 1)))
        prev_end = end
        if end == n:
            break
    return out


def perplexity(model: Model, ids: np.ndarray, window: int, stride: int,
               progress: Progress = NoProgress()) -> dict[str, Any]:
    """Mean per-token negative log-likelihood and its exp over ids[N] (see module doc)."""
    ids = np.asarray(ids)
    if ids.ndim != 1 or ids.dtype.kind not in "iu" or len(ids) < 2:
        raise DataError(f"perplexity needs a 1-D array of at least 2 token ids, got "
                        f"{ids.dtype} {list(ids.shape)}")
    if window < 2 or not 1 <= stride <= window:
        raise InputError(f"perplexity needs window >= 2 and 1 <= stride <= window "
                         f"(got window {window}, stride {stride})")
    rt, (feed, out) = Runtime(model), lm_io(model)
    total, count = 0.0, 0
    spans = windows(len(ids), window, stride)
    for begin, end, first in progress.track(spans, len(spans), "perplexity"):
        logits = rt.run({feed: ids[None, begin:end].astype(np.int64)})[out][0]  # [L, V]
        # position t is predicted by the logits at t - 1
        nll = token_nll(logits[first - 1 - begin:end - 1 - begin], ids[first:end])
        total, count = total + float(nll.sum()), count + len(nll)
    mean = total / count
    return {"tokens": count, "nll": mean, "nll_sum": total, "perplexity": math.exp(mean),
            "windows": len(spans), "window": window, "stride": stride}
