"""Tokenizers kept with a model, strided perplexity and greedy generation (on the charlm)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from optcli.errors import DataError, InputError
from optcli.io import load_model
from optcli.runtime import Runtime
from optcli.text.generate import greedy
from optcli.text.perplexity import perplexity, token_nll, windows
from optcli.text.tokenizer import load_tokenizer
from tests.conftest import SAMPLES


@pytest.fixture(scope="module")
def charlm():
    return load_model(SAMPLES / "charlm.npz")


def test_char_tokenizer_round_trip(charlm):
    tok = load_tokenizer(charlm)
    text = "The fool, said he."
    assert tok.decode(tok.encode(text)) == text
    unk = charlm.extra["tokenizer"]["unk_id"]
    assert tok.encode("\u00e9") == [unk] and tok.decode([unk]) == "\ufffd"


def test_missing_or_unknown_tokenizer(charlm):
    with pytest.raises(InputError, match="no tokenizer"):
        load_tokenizer(charlm.replace(extra={}))
    with pytest.raises(InputError, match="kind 'spm' unknown"):
        load_tokenizer(charlm.replace(extra={"tokenizer": {"kind": "spm"}}))


def test_hf_json_tokenizer_special_tokens_option(charlm):
    tokenizers = pytest.importorskip("tokenizers")
    from tokenizers import models, pre_tokenizers, processors
    t = tokenizers.Tokenizer(models.WordLevel({"[CLS]": 0, "a": 1, "b": 2, "[UNK]": 3},
                                              unk_token="[UNK]"))
    t.pre_tokenizer = pre_tokenizers.Whitespace()
    t.post_processor = processors.TemplateProcessing(single="[CLS] $A", special_tokens=[
        ("[CLS]", 0)])
    m = charlm.replace(extra={"tokenizer": {"kind": "hf_json", "json": t.to_str()}})
    assert load_tokenizer(m).encode("a b") == [0, 1, 2]
    assert load_tokenizer(m, add_special_tokens=False).encode("a b") == [1, 2]
    bad = charlm.replace(extra={"tokenizer": {"kind": "hf_json", "json": "{"}})
    with pytest.raises(InputError, match="does not load"):
        load_tokenizer(bad)


@pytest.mark.parametrize("n, window, stride", [(10, 4, 4), (10, 4, 1), (10, 4, 3), (3, 8, 2),
                                               (100, 32, 7)])
def test_windows_score_every_token_once(n, window, stride):
    scored = []
    for begin, end, first in windows(n, window, stride):
        assert end - begin <= window and begin < first <= end
        scored += range(first, end)
    assert scored == list(range(1, n))


def _brute_force(model, ids, window, stride):
    """Each token t >= 1 scored from its own window's logits, HF's loop written out (with
    the step capped at window - 1 so that no token goes unscored)."""
    rt, nll, prev_end = Runtime(model), [], 0
    for begin in range(0, len(ids), min(stride, window - 1)):
        end = min(begin + window, len(ids))
        logits = rt.run({"ids": ids[None, begin:end]})["logits"][0].astype(np.float64)
        for t in range(max(prev_end, begin + 1), end):
            z = logits[t - 1 - begin]
            nll.append(np.log(np.exp(z - z.max()).sum()) + z.max() - z[ids[t]])
        prev_end = end
        if end == len(ids):
            break
    return float(np.mean(nll)), len(nll)


def test_perplexity_matches_brute_force(charlm):
    ids = np.load(SAMPLES / "charlm_eval.npz")["ids"].reshape(-1)[:300]
    rep = perplexity(charlm, ids, window=64, stride=24)
    nll, count = _brute_force(charlm, ids, 64, 24)
    assert perplexity(charlm, ids, 64, 64)["tokens"] == 299
    assert rep["tokens"] == count == 299
    assert rep["nll"] == pytest.approx(nll, rel=1e-9)
    assert rep["perplexity"] == pytest.approx(np.exp(nll))
    # more context helps: the full 128 window beats 16-token windows
    assert perplexity(charlm, ids, 128, 128)["nll"] < perplexity(charlm, ids, 16, 16)["nll"]


def test_token_nll_is_stable():
    logits = np.array([[1000.0, 0.0], [0.0, 0.0]], np.float32)
    np.testing.assert_allclose(token_nll(logits, np.array([0, 1])), [0.0, np.log(2)])


def test_perplexity_bad_arguments(charlm):
    with pytest.raises(DataError, match="1-D array"):
        perplexity(charlm, np.zeros((2, 3), np.int64), 8, 8)
    with pytest.raises(InputError, match="stride"):
        perplexity(charlm, np.arange(10), 8, 9)


def test_greedy_equals_step_by_step_argmax(charlm):
    tok = load_tokenizer(charlm)
    prompt = tok.encode("The ")
    new = greedy(charlm, prompt, 5)
    rt, seq = Runtime(charlm), list(prompt)
    for _ in range(5):
        seq.append(int(rt.run({"ids": np.array([seq])})["logits"][0, -1].argmax()))
    assert new == seq[len(prompt):]
    assert greedy(charlm, prompt, 5, eos_id=new[0]) == new[:1]          # stops after eos
    with pytest.raises(InputError):
        greedy(charlm, [], 3)


def test_tokenizer_spec_is_json_serialisable(charlm):
    json.dumps(charlm.extra["tokenizer"])
