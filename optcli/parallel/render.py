"""Rich rendering of the planner's report and of the plan a run/eval/bench used. Nothing here
computes: every figure comes from the report dict."""

from __future__ import annotations

from typing import Any, Callable

from rich.console import Group
from rich.table import Table
from rich.text import Text

from optcli.parallel.plan import fmt_bytes


def _table(title: str, columns: list[str], rows: list[list[str]]) -> Table:
    t = Table(title=title, title_justify="left", header_style="bold")
    for i, c in enumerate(columns):
        t.add_column(c, justify="left" if i == 0 else "right")
    for r in rows:
        t.add_row(*r)
    return t


def _where(p: dict[str, Any]) -> str:
    if p["strategy"] == "pipeline":
        return "stages from " + ", ".join(p["stages"])
    if p["strategy"] == "tensor":
        return f"{len(p['shards'])} layers split"
    return ""


def plan_line(p: dict[str, Any]) -> str:
    if p["strategy"] == "serial":
        return f"serial: one process, {p['threads']} BLAS thread(s) (the baseline)"
    return (f"{p['strategy']} × {p['workers']} {p['kind']} workers, {p['threads']} BLAS "
            f"thread(s) each" + (f"; {_where(p)}" if _where(p) else ""))


def render_plan(r: dict[str, Any]) -> Group:
    fmt = lambda v: "-" if v is None else f"{v:.2f}×"  # noqa: E731
    rows = [[plan_line(c["plan"]), fmt(c["predicted_speedup"]), fmt(c.get("measured_speedup")),
             fmt_bytes(c["memory_per_worker"]), "yes" if c["fits"] else "NO",
             " / ".join(f"{100 * s:.0f} %" for s in c.get("stage_shares", []))]
            for c in r["candidates"]]
    m = r["measured"]
    head = Text(f"{r['model']}: {r['workers']} workers, batch {r['batch']}, {r['cores']} "
                f"cores; baseline (1 process, {r['cores']} BLAS threads) "
                f"{m['baseline_ms']:.2f} ms, 1 thread {m['one_thread_ms']:.2f} ms"
                + (f"; 2 Python threads run it {m['thread_scaling']:.2f}× as fast as one"
                   if m.get("thread_scaling") else ""))
    by = {"measured_speedup": " (by measured speedup)",
          "predicted_speedup": " (by predicted speedup)"}.get(r.get("chosen_by", ""), "")
    choice = Text("choice: " + (plan_line(r["choice"]) + by if r["choice"] else
                                "none fits the memory per worker"), style="bold")
    ext = [[str(x["workers"])] + [fmt(x[k]) for k in ("data_process", "data_thread",
                                                      "pipeline", "tensor")]
           for x in r["extrapolation"]]
    return Group(head, _table("strategies (speedup vs baseline)", [
        "plan", "predicted", "measured", "memory/worker", "fits", "stage shares"], rows),
        choice, _table("extrapolation — cost model, not measured (one core per worker)",
                       ["workers", "data (processes)", "data (threads)", "pipeline",
                        "tensor"], ext), Text(r["note"], style="dim"))


def with_parallel(render: Callable[[dict[str, Any]], Any]) -> Callable[[dict[str, Any]], Any]:
    """A renderer that adds which parallel plan ran, when the report has one."""
    def wrapped(r: dict[str, Any]) -> Any:
        if "parallel" not in r:
            return render(r)
        rest = {k: v for k, v in r.items() if k != "parallel"}
        return Group(render(rest), Text("parallel: " + plan_line(r["parallel"])))
    return wrapped
