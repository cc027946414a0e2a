"""Entropy coding (the `encode` step): file sizes and bits per symbol.

    python benchmarks/encode_sizes.py

For sample_models/lenet300.npz and lenet5.npz, two pipelines: prune 90 % (global magnitude) +
int8 per channel, and prune 50 % + 4-bit sharing; each saved with and without `encode`, with
the encode step's table of bits per stored symbol (before = the dtype's width, the empirical
entropy, after = coded, code table and sub-stream offsets included). The container already
deflates every member up to 64 KiB (io.write_npz), so `encode` only codes an array where its
Huffman code beats that: in practice the arrays over 64 KiB. Then times Huffman encode and
decode of 1 M uint8 symbols (geometric, ~3 bits of entropy, and uniform).
Deep Compression (Han, Mao & Dally 2016) reports Huffman saving 20-30 % on top of pruning and
a 5-8 bit codebook; int8 RTN codes are closer to uniform, so expect less there.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from optcli.coding import decode, empirical_entropy, encode  # noqa: E402
from optcli.io import load_model, save_model  # noqa: E402
from optcli.steps import STEPS  # noqa: E402
from optcli.steps.base import StepContext  # noqa: E402


def _step(name: str, model, **params):
    return STEPS[name].apply(model, STEPS[name].Config(**params), StepContext(seed=0))


PIPELINES = {
    "prune 90 % global + int8 channel": [("prune", {"sparsity": 0.9, "scope": "global"}),
                                         ("quantize", {"bits": 8, "granularity": "channel"})],
    "prune 50 % global + share 4 bits": [("prune", {"sparsity": 0.5, "scope": "global"}),
                                         ("share", {"bits": 4})],
}


def sizes(model_name: str, label: str, tmp: Path) -> None:
    m = load_model(ROOT / "sample_models" / f"{model_name}.npz")
    for step, params in PIPELINES[label]:
        m = _step(step, m, **params)[0]
    coded, record = _step("encode", m)
    plain = save_model(m, tmp / f"{model_name}_q.npz", force=True)
    enc = save_model(coded, tmp / f"{model_name}_e.npz", force=True)
    back = load_model(tmp / f"{model_name}_e.npz")
    exact = all(np.array_equal(back.tensors[k].decode(), t.decode()) for k, t in m.tensors.items())
    print(f"\n{model_name}: {label}: {plain:,} B; + encode: {enc:,} B "
          f"({100 * (1 - enc / plain):.1f} % smaller; decoded exactly: {exact})")
    print(f"  {'tensor':<12} {'array':<14} {'symbols':>8} {'distinct':>8} {'before':>6} "
          f"{'entropy':>7} {'after':>6} {'bytes before':>12} {'after':>7}")
    for row in record.layers:
        for a in row["arrays"]:
            mark = "" if a["coded"] else "  (not coded)"
            print(f"  {row['tensor']:<12} {a['array'] + ' ' + a['dtype']:<14} {a['symbols']:>8,} "
                  f"{a['distinct']:>8} {a['bits_before']:>6} {a['entropy']:>7.3f} "
                  f"{a['bits_after']:>6.3f} {a['bytes_before']:>12,} {a['bytes_after']:>7,}{mark}")


def timing() -> None:
    rng = np.random.default_rng(0)
    streams = {"geometric": np.minimum(rng.geometric(0.2, 1_000_000), 255).astype(np.uint8),
               "uniform": rng.integers(0, 256, 1_000_000).astype(np.uint8)}
    print("\n1 M uint8 symbols (best of 3):")
    for label, x in streams.items():
        t_enc, t_dec = [], []
        for _ in range(3):
            t0 = time.perf_counter()
            c = encode(x)
            t1 = time.perf_counter()
            y = decode(c, "uint8", x.shape)
            t_enc.append(t1 - t0)
            t_dec.append(time.perf_counter() - t1)
        assert np.array_equal(x, y)
        print(f"  {label:<10} entropy {empirical_entropy(x):.3f} bits, coded "
              f"{8 * c.nbytes / x.size:.3f} bits/symbol; encode {min(t_enc):.3f} s, "
              f"decode {min(t_dec):.3f} s")


def main() -> None:
    with tempfile.TemporaryDirectory() as d:
        for name in ("lenet300", "lenet5"):
            for label in PIPELINES:
                sizes(name, label, Path(d))
    timing()


if __name__ == "__main__":
    main()
