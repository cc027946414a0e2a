"""Greedy decoding from a language model: the argmax token, one step at a time.

Each step reruns the whole sequence (no key/value cache): simple, exact, and fast enough for
the short continuations used to check an imported or compressed model token for token.

    new = greedy(model, tok.encode("The capital of France is"), max_new_tokens=10)
    tok.decode(new)          # " Paris. ..."
"""

from __future__ import annotations

import numpy as np

from optcli.errors import InputError
from optcli.graph import Model
from optcli.runtime import Runtime
from optcli.text.perplexity import lm_io


def greedy(model: Model, prompt_ids: list[int], max_new_tokens: int,
           eos_id: int | None = None) -> list[int]:
    """The up to `max_new_tokens` new token ids (stopping after `eos_id`), prompt excluded."""
    if not prompt_ids:
        raise InputError("greedy generation needs a non-empty prompt")
    if max_new_tokens < 0:
        raise InputError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
    rt, (feed, out) = Runtime(model), lm_io(model)
    seq, new = [int(i) for i in prompt_ids], []
    for _ in range(max_new_tokens):
        logits = rt.run({feed: np.array([seq], np.int64)})[out]      # [1, T, V]
        tok = int(np.argmax(logits[0, -1]))
        seq.append(tok)
        new.append(tok)
        if tok == eos_id:
            break
    return new
