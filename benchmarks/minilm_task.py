"""The MiniLM retrieval task the transformer benchmarks share (not a benchmark itself).

MiniLM (all-MiniLM-L6-v2, fetched into real_models/minilm by scripts/fetch_real_models.py),
calibrated on the Devil's Dictionary entries of `sample_models/devil_calibration.jsonl` and
evaluated on the 200 headword -> definition pairs of `devil_retrieval.jsonl` (disjoint sets).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from optcli.interop.hf import import_hf  # noqa: E402
from optcli.steps.base import StepContext  # noqa: E402
from optcli.text.retrieval import load_pairs, text_dataset  # noqa: E402

MINILM = ROOT / "real_models" / "minilm"
CALIB = ROOT / "sample_models" / "devil_calibration.jsonl"
PAIRS = ROOT / "sample_models" / "devil_retrieval.jsonl"


def load_task():
    """(model, calibration StepContext, retrieval pairs)."""
    model = import_hf(str(MINILM))
    calib = text_dataset(model, CALIB)                   # every text, padded [N, T]
    context = StepContext(seed=0, calibration=lambda: calib.inputs)
    return model, context, load_pairs(PAIRS)
