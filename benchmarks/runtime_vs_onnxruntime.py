"""Latency of optcli's fast NumPy runtime against onnxruntime, on the same models and inputs.

    pip install -e '.[bench]'                                     # optcli, onnx, onnxruntime
    python benchmarks/runtime_vs_onnxruntime.py                  # table on stdout
    python benchmarks/runtime_vs_onnxruntime.py --profile        # + time per op type (optcli)
    python benchmarks/runtime_vs_onnxruntime.py --json > out.json
    python benchmarks/runtime_vs_onnxruntime.py --models bert --threads 1 --seconds 1

Models: `sample_models/lenet300.npz` and `lenet5.npz` (random-weight stand-ins of the same
architectures when the files are absent; the output says so) and a synthetic MiniLM-sized BERT
encoder (hidden 384, 12 heads, FFN 1536, erf GELU, post-LN, meanpool + l2normalize, seq 128,
random weights; `--bert-layers`, default 6 = all-MiniLM-L6). Each model is exported with
`optcli.interop.onnx_export`, so both runtimes execute the very same graph and weights.

Method (see benchmarks/README.md): outputs are compared first (max abs diff); then, after
warm-up, optcli and onnxruntime runs alternate in one process on the same inputs until each
side has spent `--seconds` (at least 5 runs, at most 1000), and the ratio of medians is
reported. Threads: onnxruntime gets intra_op_num_threads=N (inter-op 1, spinning off so an idle
pool does not steal the core NumPy needs next); NumPy's BLAS is limited to N with threadpoolctl.
Element-wise NumPy code is single-threaded whatever N is.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Callable

try:
    import threadpoolctl
except ImportError:   # without it, BLAS threads can only be pinned before NumPy loads BLAS
    threadpoolctl = None
    for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[_var] = "1"

import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402

from optcli.builder import GraphBuilder  # noqa: E402
from optcli.interop.onnx_export import export_onnx  # noqa: E402
from optcli.io import load_model  # noqa: E402
from optcli.runtime import Runtime  # noqa: E402

SAMPLES = Path(__file__).resolve().parent.parent / "sample_models"
BATCHES = {"lenet300": (1, 256), "lenet5": (1, 256), "bert": (1, 8)}
SEQ = 128


# ----------------------------------------------------------------------------- models

def _w(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return (rng.standard_normal(shape) / np.sqrt(shape[-1] if len(shape) > 1 else 1)
            ).astype(np.float32)


def _linear(b: GraphBuilder, rng, x: str, name: str, n_in: int, n_out: int) -> str:
    return b.add("linear", x=x, weight=b.weight(f"{name}.w", _w(rng, n_out, n_in)),
                 bias=b.weight(f"{name}.b", np.zeros(n_out, np.float32)), name=name)


def lenet300(rng) -> object:
    """LeNet-300-100: 784 -> 300 -> 100 -> 10 MLP on [B, 1, 28, 28] images."""
    b = GraphBuilder("lenet300", task={"kind": "classification"})
    h = b.add("flatten", x=b.input("image", ["batch", 1, 28, 28]))
    h = b.add("relu", x=_linear(b, rng, h, "fc1", 784, 300))
    h = b.add("relu", x=_linear(b, rng, h, "fc2", 300, 100))
    b.output(_linear(b, rng, h, "fc3", 100, 10), "logits", ["batch", 10])
    return b.build()


def lenet5(rng) -> object:
    """LeNet-5: conv5x5(6, pad 2) relu maxpool2, conv5x5(16) relu maxpool2, 400-120-84-10."""
    b = GraphBuilder("lenet5", task={"kind": "classification"})
    h = b.input("image", ["batch", 1, 28, 28])
    for i, (c_in, c_out, pad) in enumerate(((1, 6, 2), (6, 16, 0)), 1):
        h = b.add("conv2d", x=h, weight=b.weight(f"c{i}.w", _w(rng, c_out, c_in, 5, 5)),
                  bias=b.weight(f"c{i}.b", np.zeros(c_out, np.float32)), attrs={"padding": pad})
        h = b.add("maxpool2d", x=b.add("relu", x=h), attrs={"kernel": 2})
    h = b.add("flatten", x=h)                                              # [B, 400]
    h = b.add("relu", x=_linear(b, rng, h, "fc1", 400, 120))
    h = b.add("relu", x=_linear(b, rng, h, "fc2", 120, 84))
    b.output(_linear(b, rng, h, "fc3", 84, 10), "logits", ["batch", 10])
    return b.build()


def _layernorm(b: GraphBuilder, x: str, name: str, d: int) -> str:
    return b.add("layernorm", x=x, weight=b.weight(f"{name}.w", np.ones(d, np.float32)),
                 bias=b.weight(f"{name}.b", np.zeros(d, np.float32)), attrs={"eps": 1e-12})


def bert(rng, layers: int, d: int = 384, heads: int = 12, ffn: int = 1536,
         vocab: int = 30522) -> object:
    """A MiniLM-sized post-LN BERT encoder with sentence-transformers pooling."""
    b = GraphBuilder("bert", task={"kind": "embedding"})
    ids = b.input("input_ids", ["batch", "seq"], "int64")
    mask = b.input("attention_mask", ["batch", "seq"], "int64")
    tok = b.add("embedding", ids=ids, weight=b.weight("tok", _w(rng, vocab, d)))
    pos = b.add("embedding", ids=b.add("positions", ids=ids),
                weight=b.weight("pos", _w(rng, 512, d)))
    h = _layernorm(b, b.add("add", a=tok, b=pos), "emb.ln", d)            # [B, T, D]
    for i in range(layers):
        q, k, v = (_linear(b, rng, h, f"l{i}.{n}", d, d) for n in "qkv")
        a = b.add("attention", q=q, k=k, v=v, mask=mask, attrs={"num_heads": heads})
        h = _layernorm(b, b.add("add", a=h, b=_linear(b, rng, a, f"l{i}.o", d, d)),
                       f"l{i}.ln1", d)
        f = b.add("gelu", x=_linear(b, rng, h, f"l{i}.up", d, ffn))       # [B, T, FFN]
        h = _layernorm(b, b.add("add", a=h, b=_linear(b, rng, f, f"l{i}.down", ffn, d)),
                       f"l{i}.ln2", d)
    pooled = b.add("meanpool", x=h, mask=mask)                            # [B, D]
    b.output(b.add("l2normalize", x=pooled), "embedding", ["batch", d])
    return b.build()


def load_models(names: list[str], bert_layers: int) -> dict[str, tuple[object, str]]:
    """name -> (model, where it came from)."""
    rng, out = np.random.default_rng(0), {}
    for name in names:
        path = SAMPLES / f"{name}.npz"
        if name == "bert":
            out[name] = (bert(rng, bert_layers), f"synthetic, {bert_layers} layers, seq {SEQ}")
        elif path.is_file():
            out[name] = (load_model(path), str(path.relative_to(SAMPLES.parent)))
        else:
            out[name] = ({"lenet300": lenet300, "lenet5": lenet5}[name](rng),
                         f"{path.name} absent: same architecture, random weights")
    return out


def make_feeds(model, batch: int, rng) -> dict[str, np.ndarray]:
    """Random inputs of the declared shapes ('batch' -> batch, other symbols -> SEQ)."""
    feeds = {}
    for vi in model.graph.inputs:
        shape = [batch if d == "batch" else (SEQ if isinstance(d, str) else d) for d in vi.shape]
        if "mask" in vi.name:
            feeds[vi.name] = np.ones(shape, vi.dtype)
        elif vi.dtype.startswith("int"):
            feeds[vi.name] = rng.integers(0, 1000, shape).astype(vi.dtype)
        else:   # image models in sample_models take raw 0..255 pixels
            feeds[vi.name] = (rng.random(shape) * 255).astype(vi.dtype)
    return feeds


# ----------------------------------------------------------------------------- timing

def ort_session(proto, threads: int) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(proto.SerializeToString(), so,
                                providers=["CPUExecutionProvider"])


def interleaved(fns: dict[str, Callable[[], object]], seconds: float, warmup: int = 3,
                min_runs: int = 5, max_runs: int = 1000) -> dict:
    """Alternate the fns until each has spent `seconds` (min_runs..max_runs runs each)."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    samples: dict[str, list[float]] = {k: [] for k in fns}   # ms
    runs = 0
    while runs < min_runs or (runs < max_runs and
                              min(sum(s) for s in samples.values()) < seconds * 1000):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            samples[k].append((time.perf_counter() - t0) * 1000)
        runs += 1
    return {k: {"median_ms": float(np.median(s)), "p90_ms": float(np.percentile(s, 90)),
                "runs": len(s)} for k, s in samples.items()}


def profile(rt: Runtime, feeds: dict[str, np.ndarray], repeats: int = 5) -> dict[str, float]:
    """Median ms per op type over `repeats` runs (after one warm-up), from Runtime.run's
    own per-op timing (fused steps are timed as their unfused parts)."""
    rt.run(feeds)
    per_run = []
    for _ in range(repeats):
        ms: dict[str, float] = {}
        rt.run(feeds, profile=ms)
        per_run.append(ms)
    return {op: float(np.median([r[op] for r in per_run])) for op in per_run[0]}


def blas_limit(threads: int):
    """BLAS limited to `threads` (without threadpoolctl it was pinned to 1 at import)."""
    if threadpoolctl is None:
        return contextlib.nullcontext()
    return threadpoolctl.threadpool_limits(limits=threads, user_api="blas")


def agreement(rt: Runtime, sess: ort.InferenceSession, feeds: dict) -> dict[str, float]:
    """Max abs difference of all outputs, and that over the largest optcli output value."""
    want = rt.run(feeds)
    got = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds)))
    diff = max(float(np.abs(got[k] - want[k]).max()) for k in want)
    scale = max(float(np.abs(want[k]).max()) for k in want)
    return {"max_abs_diff": diff, "max_rel_diff": diff / scale if scale else 0.0}


def bench_one(rt: Runtime, proto, feeds: dict, threads: int, args) -> dict:
    """One (model, batch, threads) row: agreement, interleaved timings, optional profile."""
    sess = ort_session(proto, threads)
    with blas_limit(threads):
        row = agreement(rt, sess, feeds)
        t = interleaved({"optcli": lambda: rt.run(feeds),
                         "onnxruntime": lambda: sess.run(None, feeds)}, args.seconds)
        row["profile_ms"] = profile(rt, feeds) if args.profile else None
    row.update({f"{side}_{k}": v for side, r in t.items() for k, v in r.items()})
    row["ratio"] = t["optcli"]["median_ms"] / t["onnxruntime"]["median_ms"]
    return row


def bench_model(name: str, model, threads: list[int], args) -> list[dict]:
    proto, rt, rows = export_onnx(model), Runtime(model, "fast"), []
    for batch in BATCHES[name]:
        feeds = make_feeds(model, batch, np.random.default_rng(batch))
        for n in threads:
            rows.append({"model": name, "batch": batch, "threads": n,
                         **bench_one(rt, proto, feeds, n, args)})
            print(f"  {name} batch {batch} threads {n}: done", file=sys.stderr)
    return rows


# ----------------------------------------------------------------------------- output

def render(rows: list[dict], sources: dict[str, str]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 160)   # no wrapping in pipes
    for name, src in sources.items():
        console.print(f"[bold]{name}[/]: {src}")
    table = Table("model", "batch", "threads", "max|diff|", "rel", "optcli med", "optcli p90",
                  "ort med", "ort p90", "optcli/ort", title="latency, ms (ratio of medians)")
    for r in rows:
        table.add_row(r["model"], str(r["batch"]), str(r["threads"]), f"{r['max_abs_diff']:.1e}",
                      f"{r['max_rel_diff']:.0e}",
                      *(f"{r[k]:.3f}" for k in ("optcli_median_ms", "optcli_p90_ms",
                                                "onnxruntime_median_ms", "onnxruntime_p90_ms")),
                      f"{r['ratio']:.2f}x")
    console.print(table)
    for r in rows:
        if r["profile_ms"]:
            total = sum(r["profile_ms"].values())
            top = sorted(r["profile_ms"].items(), key=lambda kv: -kv[1])[:6]
            parts = ", ".join(f"{op} {ms:.2f} ({100 * ms / total:.0f}%)" for op, ms in top)
            console.print(f"profile {r['model']} b{r['batch']} t{r['threads']} "
                          f"({total:.2f} ms): {parts}")


def environment() -> dict:
    """Versions, BLAS and the load average: a busy machine explains odd figures."""
    blas = ([f"{i['internal_api']} {i['version']}" for i in threadpoolctl.threadpool_info()
             if i["user_api"] == "blas"] if threadpoolctl else ["unknown (pinned to 1 thread)"])
    return {"numpy": np.__version__, "onnxruntime": ort.__version__, "blas": blas,
            "cpus": os.cpu_count(), "loadavg_1m": os.getloadavg()[0]}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="lenet300,lenet5,bert")
    p.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    p.add_argument("--seconds", type=float, default=2.0, help="time budget per side")
    p.add_argument("--bert-layers", type=int, default=6)
    p.add_argument("--profile", action="store_true", help="time each op type (optcli fast)")
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")
    args = p.parse_args(argv)
    threads = [int(t) for t in args.threads.split(",")]
    names = args.models.split(",")
    if set(names) - set(BATCHES):
        p.error(f"unknown model(s) {sorted(set(names) - set(BATCHES))}; "
                f"valid: {', '.join(BATCHES)}")
    if threadpoolctl is None and threads != [1]:
        print("threadpoolctl is not installed: BLAS pinned to 1 thread, measuring 1 thread only",
              file=sys.stderr)
        threads = [1]
    env = environment()                     # before the run: the load of other processes
    models = load_models(names, args.bert_layers)
    rows = [r for name, (m, _) in models.items() for r in bench_model(name, m, threads, args)]
    sources = {name: src for name, (_, src) in models.items()}
    if args.json:
        print(json.dumps({"env": env, "sources": sources, "rows": rows}, indent=2))
    else:
        print(json.dumps(env))
        render(rows, sources)


if __name__ == "__main__":
    main()
