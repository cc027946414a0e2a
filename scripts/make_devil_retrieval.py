"""Build the Devil's Dictionary retrieval task (Ambrose Bierce, 1911; public domain).

    apt-get install -y dict-devil
    python scripts/make_devil_retrieval.py   # sample_models/devil_{retrieval,calibration}.jsonl

Reads the dictd file /usr/share/dictd/devil.dict.dz (gzip, latin-1). An entry starts at a line
`HEADWORD, pos. ` (upper-case headword, then a part of speech such as `n.` or `v.t.`); it runs
to the start of the next one. That gives 963 entries, in the book's (alphabetical) order; a
few irregular entries (`ABRACADABRA.`, `CUI BONO?`) stay inside the entry before them, as in
the measurement that ../shared/REAL_MODELS.md reports (MiniLM fp32: top-1 0.315, MRR 0.402).

Each pair is {"query": lower-cased headword, "document": definition, whitespace-normalised}.
The first 200 entries are the evaluation set; entries 200-327 are for calibration only, so a
compression step never sees the texts it is evaluated on.
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCE = Path("/usr/share/dictd/devil.dict.dz")
ENTRY = re.compile(r"^([A-Z][A-Z'\- ]+), [a-z.]+ ", re.MULTILINE)
EVAL, CALIB = slice(0, 200), slice(200, 328)


def parse_entries(text: str) -> list[dict[str, str]]:
    """(headword, definition) pairs of the dictionary body, in order."""
    starts = list(ENTRY.finditer(text))
    if not starts:
        raise SystemExit("no dictionary entries found: is this the Devil's Dictionary?")
    pairs = []
    for here, after in zip(starts, starts[1:] + [None]):
        end = after.start() if after else len(text)
        definition = " ".join(text[here.end():end].split())
        pairs.append({"query": here.group(1).lower(), "document": definition})
    return pairs


def write_jsonl(rows: list[dict[str, str]], path: Path) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--source", type=Path, default=SOURCE)
    ap.add_argument("--dest", type=Path, default=ROOT / "sample_models")
    args = ap.parse_args()
    if not args.source.is_file():
        raise SystemExit(f"{args.source}: not found (apt-get install -y dict-devil)")
    text = gzip.open(args.source).read().decode("latin-1")
    pairs = parse_entries(text)
    for rows, name in ((pairs[EVAL], "devil_retrieval.jsonl"),
                       (pairs[CALIB], "devil_calibration.jsonl")):
        write_jsonl(rows, args.dest / name)
        print(f"{args.dest / name}: {len(rows)} pairs")
    print(f"{len(pairs)} entries in {args.source}")


if __name__ == "__main__":
    main()
