"""Rendering of report dicts: rich tables for people, one JSON document for machines.

Nothing here computes: every number shown comes from the report the library returned.
"""

from __future__ import annotations

import json
from typing import Any, Callable

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from optcli.parallel.render import render_plan, with_parallel


def to_json(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=2, sort_keys=False, default=_json_default)


def _json_default(o: Any) -> Any:
    if hasattr(o, "item"):
        return o.item()
    if hasattr(o, "tolist"):
        return o.tolist()
    return str(o)


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _table(title: str, columns: list[str], rows: list[list[Any]]) -> Table:
    """A table whose columns are right-aligned when every cell starts like a number."""
    t = Table(title=title, title_justify="left", header_style="bold")
    cells = [[str(x) for x in r] for r in rows]
    for i, c in enumerate(columns):
        numeric = bool(cells) and all(r[i][:1].isdigit() or r[i][:1] in "-+." for r in cells)
        t.add_column(c, justify="right" if numeric and i else "left", no_wrap=(i == 0))
    for r in cells:
        t.add_row(*r)
    return t


def render_inspect(r: dict[str, Any]) -> Group:
    head = Text.assemble(
        (f"{r['name']}", "bold"), f"  task={r['task'].get('kind')}  nodes={r['nodes']}  ",
        f"params={r['params']:,}  nonzeros={r['nonzeros']:,}  ",
        f"memory={human_bytes(r['memory_bytes'])}  disk={human_bytes(r['disk_bytes'])}")
    io_rows = [[f"in  {v['name']}", str(v["shape"]), v["dtype"], v["meaning"]]
               for v in r["inputs"]] + [[f"out {v['name']}", str(v["shape"]), v["dtype"],
                                         v["meaning"]] for v in r["outputs"]]
    layers = [[x["layer"], x["op"], "x".join(map(str, x["shape"])), f"{x['params']:,}",
               f"{x['nonzeros']:,}", x["encoding"], f"{x['bits_per_weight']:.2f}",
               human_bytes(x["bytes"])] for x in r["layers"]]
    ops = ", ".join(f"{k}×{v}" for k, v in r["ops"].items())
    return Group(head, Text(f"ops: {ops}"),
                 _table("inputs / outputs", ["value", "shape", "dtype", "meaning"], io_rows),
                 _table("layers", ["layer", "op", "shape", "params", "nonzeros", "encoding",
                                   "bits/w", "bytes"], layers))


def render_compress(r: dict[str, Any]) -> Group:
    s, lat, acc = r["size"], r["latency"], r["accuracy"]
    rows = [["size on disk", human_bytes(s["before_bytes"]), human_bytes(s["after_bytes"]),
             f"{s['ratio']:.2f}× smaller"],
            ["size in memory", human_bytes(s["memory_before_bytes"]),
             human_bytes(s["memory_after_bytes"]), f"{s['memory_ratio']:.2f}× smaller"],
            ["nonzero params", f"{s['nonzeros_before']:,}", f"{s['nonzeros_after']:,}",
             f"of {s['params']:,}"],
            ["weights resident while running", human_bytes(lat["resident_before_bytes"]),
             human_bytes(lat["resident_after_bytes"]),
             ", ".join(f"{k}×{v}" for k, v in lat["execution_forms_after"].items())],
            [f"latency (batch {lat['batch']}, median)", f"{lat['before_ms']:.3f} ms",
             f"{lat['after_ms']:.3f} ms", f"{lat['speedup']:.2f}× speedup"]]
    if acc is not None:
        rows.append([f"accuracy ({acc['metric']}, n={acc['samples']})", f"{acc['before']:.4f}",
                     f"{acc['after']:.4f}", f"{acc['delta']:+.4f}"])
    else:
        rows.append(["accuracy", "-", "-", "no evaluation data in the pipeline"])
    parts = [_table(f"{r['input']} → {r['output']}", ["", "before", "after", "change"], rows),
             _layers_table(r["layers"]), _steps_table(r["steps"])]
    parts += [_symbols_table(st) for st in r["steps"] if st["step"] == "encode" and st["layers"]]
    parts += [_quantize_table(st) for st in r["steps"]
              if st["step"] == "quantize" and st["layers"] and "bits" in st["layers"][0]]
    if r["gates"]:
        parts.append(_table("gates", ["gate", "limit", "value", "result"], [
            [g["gate"], g["limit"], "-" if g["value"] is None else f"{g['value']:.4f}",
             "[green]pass[/]" if g["passed"] else "[red]FAIL[/]"] for g in r["gates"]]))
    return Group(*parts)


def _layers_table(layers: list[dict[str, Any]]) -> Table:
    return _table("per layer", ["layer", "shape", "kept", "encoding after", "bits/w",
                                "value + index bits/kept", "bytes before → after", "ratio"], [
        [x["layer"], "x".join(map(str, x["shape"])),
         f"{100 * x['nonzeros_after'] / max(x['params'], 1):.1f} %", x["encoding_after"],
         f"{x['bits_per_weight_after']:.2f}",
         f"{x['value_bits_per_kept']:.1f} + {x['index_bits_per_kept']:.1f}",
         f"{human_bytes(x['bytes_before'])} → {human_bytes(x['bytes_after'])}",
         f"{x['ratio']:.2f}×"] for x in layers])


def _quantize_table(step: dict[str, Any]) -> Table:
    """The quantize step per layer: grid, method and the error it adds (find the layer that
    hurts: the lowest SQNR)."""
    def err(x: dict[str, Any]) -> str:
        db = "inf" if x["sqnr_db"] is None else f"{x['sqnr_db']:.1f} dB"
        rel = f"{x['rel_output_error']:.2e}" if "rel_output_error" in x else "-"
        return f"{rel} / {db} ({x['error_on']})"
    return _table("quantized layers", [
        "layer", "bits", "granularity", "sym", "method", "rel. output error / SQNR",
        "bytes before → after"], [
        [x["layer"], x["bits"], x["granularity"] + (f" {x['group_size']}" if x["group_size"]
                                                    else ""),
         "yes" if x["symmetric"] else "no", x["method"], err(x),
         f"{human_bytes(x['bytes_before'])} → {human_bytes(x['bytes_after'])}"]
        for x in step["layers"]])


def _symbols_table(step: dict[str, Any]) -> Table:
    """The encode step's bits per stored symbol, before and after entropy coding."""
    return _table("bits per stored symbol (encode)", [
        "tensor", "array", "symbols", "distinct", "bits before", "entropy", "bits after",
        "bytes before → after"], [
        [x["tensor"], f"{a['array']} {a['dtype']}", f"{a['symbols']:,}", f"{a['distinct']:,}",
         a["bits_before"], f"{a['entropy']:.2f}", f"{a['bits_after']:.2f}" + (
             "" if a["coded"] else " (not coded)"),
         f"{human_bytes(a['bytes_before'])} → {human_bytes(a['bytes_after'])}"]
        for x in step["layers"] for a in x["arrays"]])


def _steps_table(steps: list[dict[str, Any]]) -> Table:
    rows = []
    for st in steps:
        params = ", ".join(f"{k}={v}" for k, v in st["config"].items()
                           if k not in ("layers", "exclude") or v not in (["*"], []))
        changed = f"{len(st['layers'])} layers" + ("; " + "; ".join(st["notes"])
                                                   if st["notes"] else "")
        params = params.replace(", ", " ")
        label = st["step"] + (f" (round {st['round']})" if st.get("round") else "")
        rows.append([label, params, f"{st['seconds']:.3f} s", changed])
    return _table("steps", ["step", "config", "time", "changed"], rows)


def render_eval(r: dict[str, Any]) -> Group:
    skip = {"kind", "model", "data", "reference", "metric", "value", r["metric"]}
    rows = [[r["metric"], f"{r['value']:.6g}"]] + [
        [k, f"{v:.6g}" if isinstance(v, float) else str(v)]
        for k, v in r.items() if k not in skip]
    against = f" (reference {r['reference']})" if r.get("reference") else ""
    return Group(Text(f"eval {r['model']} on {r['data']}{against}"),
                 _table("", ["metric", "value"], rows))


def render_bench(r: dict[str, Any]) -> Group:
    cols = ["batch", "min ms", "median ms", "p90 ms", "p99 ms", "cv", "items/s"]
    if r["reference"]:
        cols += ["reference median ms", "speedup"]
    rows = []
    for row in r["results"]:
        m = row["model"]
        line = [row["batch"], f"{m['min_ms']:.3f}", f"{m['median_ms']:.3f}", f"{m['p90_ms']:.3f}",
                f"{m['p99_ms']:.3f}", f"{m['cv']:.2f}", f"{m['throughput_per_s']:.1f}"]
        if r["reference"]:
            line += [f"{row['reference']['median_ms']:.3f}", f"{row['speedup']:.2f}×"]
        rows.append(line)
    parts = [_table(f"bench {r['model']} (threads: {r['threads'] or 'default'})", cols, rows)]
    b = r.get("best")
    if b and len(r["results"]) > 1:
        parts.append(Text(
            f"best throughput at batch {b['batch']}: {b['throughput_per_s']:.1f} items/s, "
            f"{b['throughput_vs_smallest']:.1f}× batch {b['smallest_batch']}'s, at "
            f"{b['median_ms']:.3f} ms per batch ({b['latency_vs_smallest']:.1f}× the latency)"))
    for row in r["results"]:
        if "profile_ms" in row:
            total = sum(row["profile_ms"].values()) or 1.0
            parts.append(_table(f"time per op, batch {row['batch']}", ["op", "ms", "share"], [
                [op, f"{ms:.3f}", f"{100 * ms / total:.1f} %"] for op, ms in
                sorted(row["profile_ms"].items(), key=lambda kv: -kv[1])]))
    return Group(*parts)


def render_run(r: dict[str, Any]) -> Text:
    outs = ", ".join(f"{k} {v['shape']}" for k, v in r["outputs"].items())
    return Text(f"{r['samples']} samples in {r['seconds']:.3f} s → {r['output']} ({outs})")


def render_import(r: dict[str, Any]) -> Text:
    return Text(f"{r['source']} ({r['format']}) → {r['output']}: {r['name']}, task {r['task']}, "
                f"{r['params']:,} params in {r['tensors']} tensors, {r['nodes']} nodes, "
                f"{human_bytes(r['bytes'])}, {r['seconds']:.1f} s")


def render_export(r: dict[str, Any]) -> Text:
    return Text(f"{r['model']} → {r['output']} ({r['to']}, opset {r['opset']}): {r['nodes']} "
                f"nodes, {r['initializers']} initializers ({r['int8_initializers']} int8), "
                f"{human_bytes(r['bytes'])}")


def render_validate(r: dict[str, Any]) -> Text:
    against = f" against {r['model']}" if r["model"] else ""
    steps = ", ".join(s["step"] for s in r["steps"])
    return Text(f"{r['config']}: valid{against} (steps: {steps})")


def render_steps(r: dict[str, Any]) -> Group:
    tables = []
    for st in r["steps"]:
        rows = [[p["name"], p["type"], "(required)" if p["required"] else repr(p["default"]),
                 ", ".join(map(str, p["choices"])) if p["choices"] else "", p["doc"]]
                for p in st["params"]]
        tables.append(_table(f"{st['name']}: {st['description']}",
                             ["param", "type", "default", "choices", "description"], rows))
    return Group(*tables)


def render_finetune(r: dict[str, Any]) -> Group:
    st = r["step"]
    d = st.get("details", {})
    fmt = lambda v: "-" if v is None else f"{v:.4f}"  # noqa: E731
    rows = [[e["epoch"], e["steps"], fmt(e["loss"]), fmt(e["accuracy"]), fmt(e.get("val_loss")),
             fmt(e.get("val_accuracy")), f"{e['lr']:.2e}", f"{e['seconds']:.2f} s"]
            for e in d.get("epochs", [])]
    parts = [Text(f"{r['model']} → {r['output']}: finetuned on {r['data']} "
                  f"({d.get('samples')} samples, {d.get('steps')} steps, seed {r['seed']}, "
                  f"{st['seconds']:.1f} s, {human_bytes(r['bytes'])})"),
             _table("epochs", ["epoch", "steps", "loss", "accuracy", "val loss", "val accuracy",
                               "lr", "time"], rows)]
    if d.get("best_epoch") is not None:
        parts.append(Text(f"best epoch: {d['best_epoch']}"))
    parts += [Text(f"note: {n}") for n in st["notes"]]
    acc = r.get("accuracy")
    if acc:
        parts.append(_table(f"accuracy on {acc['data']} (n={acc['samples']})",
                            ["metric", "before", "after", "change"],
                            [[acc["metric"], f"{acc['before']:.4f}", f"{acc['after']:.4f}",
                              f"{acc['after'] - acc['before']:+.4f}"]]))
    return Group(*parts)


RENDERERS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "inspect": render_inspect, "compress": render_compress, "eval": render_eval,
    "bench": render_bench, "run": render_run, "import": render_import,
    "export": render_export, "validate": render_validate,
    "steps": render_steps, "finetune": render_finetune,
}
RENDERERS |= {"plan": render_plan, **{k: with_parallel(RENDERERS[k]) for k in ("run", "eval",
                                                                              "bench")}}


def show(report: dict[str, Any], as_json: bool, console: Console) -> None:
    if as_json:
        console.file.write(to_json(report) + "\n")
    else:
        console.print(RENDERERS[report["kind"]](report))
