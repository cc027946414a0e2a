"""The command line: thin Typer functions over `optcli.api` / `optcli.compress`.

Results go to stdout (a rich table, or exactly one JSON document with --json); progress bars
and errors go to stderr. Errors map to exit codes in one place (`_guard`, see errors.py).
"""

from __future__ import annotations

import functools
import traceback
from pathlib import Path
from typing import Annotated, Any, Callable, Literal, Optional

import typer
from rich.console import Console

from optcli import __version__, api
from optcli.compress import compress as compress_model
from optcli.config import METRICS
from optcli.errors import EXIT_INTERRUPTED, EXIT_RUNTIME, GateFailed, OptcliError
from optcli.render import show
from optcli.rich_progress import RichProgress

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Make trained neural networks smaller and faster; measure the cost.")

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]
ForceOpt = Annotated[bool, typer.Option("--force", help="Replace an existing output file.")]
ModelArg = Annotated[Path, typer.Argument(help="An optcli model (.npz).")]
OutOpt = Annotated[Path, typer.Option("-o", "--output", help="Where to write.")]
BatchSizeOpt = Annotated[int, typer.Option("--batch-size", min=1, help="Samples per batch.")]
WeightsOpt = Annotated[Literal["auto", "compact"], typer.Option(
    "--weights", help="auto: decode compressed weights once (fastest); compact: keep them "
                      "compressed while running (smallest).")]
RefOpt = Annotated[Optional[Path], typer.Option("--reference",
                                                help="The original model to compare with.")]
WorkersOpt = Annotated[Optional[int], typer.Option(
    min=1, help="Parallel workers (overrides the model's plan, see `optcli plan`).")]
StrategyOpt = Annotated[Optional[str], typer.Option(help="serial | data | pipeline | tensor")]
KindOpt = Annotated[Optional[str], typer.Option("--worker-kind", help="process | thread")]
ExecutorOpt = Annotated[Optional[str], typer.Option(
    help="dask://HOST:PORT or a Dask scheduler file: data parallel on a Dask cluster.")]
ThreadsOpt = Annotated[Optional[int], typer.Option(min=1, help="BLAS threads (per worker).")]

_state = {"debug": False}


def _guard(fn: Callable[..., dict[str, Any]]) -> Callable[..., None]:
    """Run a command: render its report; map errors to one stderr line and an exit code."""
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        try:
            report, as_json = fn(*args, **kwargs)
            show(report, as_json, _stdout(as_json))
            if report.get("passed") is False:   # written and reported, but a gate failed
                failed = ", ".join(g["gate"] for g in report["gates"] if not g["passed"])
                raise GateFailed(f"quality gate failed: {failed}")
        except OptcliError as e:
            _error(f"optcli: error: {e}")
            raise typer.Exit(e.exit_code)
        except KeyboardInterrupt:
            _error("optcli: interrupted")
            raise typer.Exit(EXIT_INTERRUPTED)
        except typer.Exit:
            raise
        except Exception as e:  # a bug: say so in one line unless --debug
            if _state["debug"]:
                traceback.print_exc()
            _error(f"optcli: internal error: {type(e).__name__}: {e} (rerun with --debug)")
            raise typer.Exit(EXIT_RUNTIME)
    return wrapper


def _stdout(as_json: bool) -> Console:
    """Results console: JSON unwrapped; tables 140 columns wide when not on a terminal (logs,
    pipes), where rich would otherwise squeeze them into 80."""
    console = Console(soft_wrap=as_json)
    if not console.is_terminal and not as_json:
        console = Console(width=140)
    return console


def _error(line: str) -> None:
    """One unwrapped line on stderr (rich would wrap it to the terminal width)."""
    typer.echo(" ".join(line.split()), err=True)


def _progress() -> RichProgress:
    return RichProgress(Console(stderr=True))


@app.callback()
def _root(debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False,
          version: Annotated[bool, typer.Option("--version", help="Print the version.")] = False
          ) -> None:
    _state["debug"] = debug
    if version:
        typer.echo(f"optcli {__version__}")
        raise typer.Exit(0)


@app.command("import")
@_guard
def import_(source: Annotated[Path, typer.Argument(
                help="A Hugging Face folder, .safetensors, .gguf, .pt/.pth or .onnx file.")],
            output: OutOpt,
            arch: Annotated[Optional[Path], typer.Option(
                help="Architecture spec (YAML) for a PyTorch state dict.")] = None,
            force: ForceOpt = False, json: JsonOpt = False):
    """Import a model from another format; the kind is told from the file's content."""
    return api.import_model(source, output, arch=arch, force=force), json


@app.command()
@_guard
def export(model: ModelArg, output: OutOpt,
           to: Annotated[Literal["onnx"], typer.Option("--to", help="Target format.")] = "onnx",
           opset: Annotated[int, typer.Option(min=17, help="ONNX opset.")] = 17,
           force: ForceOpt = False, json: JsonOpt = False):
    """Export for deployment: ONNX, float or int8 weights as DequantizeLinear (QDQ)."""
    return api.export_model(model, output, to=to, opset=opset, force=force), json


@app.command()
@_guard
def inspect(model: ModelArg, json: JsonOpt = False):
    """Graph summary and a per-layer table (op, shape, params, nonzeros, encoding, bytes)."""
    return api.inspect_model(model), json


@app.command()
@_guard
def run(model: ModelArg,
        input: Annotated[Path, typer.Option("--input", help="An .npz of model inputs.")],
        output: OutOpt, batch_size: BatchSizeOpt = 256, force: ForceOpt = False,
        weights: WeightsOpt = "auto", workers: WorkersOpt = None, threads: ThreadsOpt = None,
        strategy: StrategyOpt = None, worker_kind: KindOpt = None,
        executor: ExecutorOpt = None, json: JsonOpt = False):
    """Inference: run MODEL on every sample of --input and write the outputs to -o."""
    par = api.ParallelOptions(workers, threads, strategy, worker_kind, executor)
    return api.run_model(model, input, output, batch_size=batch_size, force=force,
                         weights=weights, parallel=par, progress=_progress()), json


@app.command("eval")
@_guard
def eval_(model: ModelArg,
          data: Annotated[Path, typer.Option(
              "--data", help="An .npz of inputs (+ labels), a .txt text (language models) or "
                             "a .jsonl of query/document pairs (sentence encoders).")],
          metric: Annotated[Literal[METRICS], typer.Option(help="What to measure.")] = "auto",
          reference: RefOpt = None, batch_size: BatchSizeOpt = 256,
          samples: Annotated[Optional[int], typer.Option(
              min=1, help="First N samples (text: first N tokens) only.")] = None,
          window: Annotated[Optional[int], typer.Option(min=2, help="Text: tokens per window.")
                            ] = None,
          stride: Annotated[Optional[int], typer.Option(min=1, help="Text: window step.")
                            ] = None,
          weights: WeightsOpt = "auto", workers: WorkersOpt = None,
          threads: ThreadsOpt = None, strategy: StrategyOpt = None,
          worker_kind: KindOpt = None, executor: ExecutorOpt = None, json: JsonOpt = False):
    """Accuracy on labelled data, perplexity for LMs, agreement with a --reference model."""
    par = api.ParallelOptions(workers, threads, strategy, worker_kind, executor)
    return api.eval_model(model, data, metric=metric, reference_path=reference,
                          batch_size=batch_size, samples=samples, weights=weights,
                          window=window, stride=stride, parallel=par,
                          progress=_progress()), json


@app.command()
@_guard
def bench(model: ModelArg,
          batch: Annotated[str, typer.Option(
              help="Comma-separated batch sizes, or 'sweep' (1, 2, 4 ... 512).")] = "1,32,256",
          threads: Annotated[Optional[int], typer.Option(min=1, help="BLAS threads.")] = None,
          reference: RefOpt = None,
          data: Annotated[Optional[Path], typer.Option(help="Inputs to time on.")] = None,
          repeats: Annotated[int, typer.Option(min=1)] = 30,
          warmup: Annotated[int, typer.Option(min=0)] = 3,
          seq: Annotated[int, typer.Option(min=1, help="Sequence length of synthetic ids.")] = 16,
          profile: Annotated[bool, typer.Option(help="Also time each op type.")] = False,
          weights: WeightsOpt = "auto", workers: WorkersOpt = None,
          strategy: StrategyOpt = None, worker_kind: KindOpt = None,
          executor: ExecutorOpt = None, json: JsonOpt = False):
    """Latency: warm-up, repeats, min/median/p90/p99, CV, throughput; interleaved vs --reference."""
    parallel = (workers, strategy, worker_kind, executor) != (None,) * 4
    par = api.ParallelOptions(workers, threads if parallel else None, strategy, worker_kind,
                              executor)
    return api.bench_model(model, batches=api.parse_batches(batch), threads=threads,
                           reference_path=reference, data_path=data, repeats=repeats,
                           warmup=warmup, seq=seq, profile=profile, weights=weights,
                           parallel=par), json


@app.command()
@_guard
def plan(model: ModelArg,
         workers: Annotated[int, typer.Option(min=1, help="Workers to plan for.")] = 2,
         memory_per_worker: Annotated[Optional[str], typer.Option(
             help="Memory of each worker, e.g. 512MB.")] = None,
         batch: Annotated[int, typer.Option(min=1, help="Batch size to plan for.")] = 256,
         seq: Annotated[int, typer.Option(min=1, help="Sequence length of synthetic ids.")] = 16,
         measure: Annotated[bool, typer.Option(
             help="Also run every strategy here and show its measured speedup.")] = False,
         json: JsonOpt = False):
    """Parallel planner: predicted speedup and memory per strategy, the choice, extrapolation."""
    return api.plan_model(model, workers=workers, memory_per_worker=memory_per_worker,
                          batch=batch, seq=seq, measure=measure), json


@app.command()
@_guard
def compress(model: ModelArg,
             config: Annotated[Path, typer.Option("--config", help="Pipeline YAML.")],
             output: OutOpt, force: ForceOpt = False,
             seed: Annotated[Optional[int], typer.Option(min=0, help="Override the seed.")] = None,
             json: JsonOpt = False):
    """Validate, apply the pipeline, write -o atomically, report size/latency/accuracy."""
    return compress_model(model, config, output, force=force, seed=seed,
                          progress=_progress()).to_dict(), json


@app.command()
@_guard
def finetune(model: ModelArg,
             data: Annotated[Path, typer.Option("--data", help="Training .npz or IDX images.")],
             output: OutOpt,
             epochs: Annotated[Optional[int], typer.Option(min=1)] = None,
             steps: Annotated[Optional[int], typer.Option(min=0, help="Instead of epochs.")
                              ] = None,
             batch_size: Annotated[Optional[int], typer.Option("--batch-size", min=1)] = None,
             optimizer: Annotated[Optional[str], typer.Option(help="sgd | adam | adamw")] = None,
             lr: Annotated[Optional[float], typer.Option(help="Base learning rate.")] = None,
             schedule: Annotated[Optional[str], typer.Option(
                 help="constant | step | exponential | linear | cosine")] = None,
             warmup: Annotated[Optional[int], typer.Option(min=0)] = None,
             weight_decay: Annotated[Optional[float], typer.Option("--weight-decay")] = None,
             validation: Annotated[Optional[float], typer.Option(help="Held-out fraction.")
                                   ] = None,
             patience: Annotated[Optional[int], typer.Option(min=0)] = None,
             distill_temperature: Annotated[Optional[float], typer.Option(
                 "--distill-temperature", help="Distil from MODEL itself at this T.")] = None,
             eval: Annotated[Optional[Path], typer.Option(
                 "--eval", help="Evaluate before and after on this .npz.")] = None,
             seed: Annotated[int, typer.Option(min=0)] = 0,
             force: ForceOpt = False, json: JsonOpt = False):
    """Recovery fine-tuning; masks, quantization grids and codebooks hold. Writes -o atomically."""
    options = dict(epochs=epochs, steps=steps, batch_size=batch_size, optimizer=optimizer,
                   lr=lr, schedule=schedule, warmup=warmup, weight_decay=weight_decay,
                   validation=validation, patience=patience,
                   distill=None if distill_temperature is None
                   else {"temperature": distill_temperature})
    return api.finetune_model(model, data, output, options=options, eval_path=eval,
                              seed=seed, force=force, progress=_progress()), json


@app.command()
@_guard
def validate(config: Annotated[Path, typer.Option("--config", help="Pipeline YAML.")],
             model: Annotated[Optional[Path], typer.Argument(help="Check selectors against it.")
                              ] = None,
             json: JsonOpt = False):
    """Every check `compress` makes before computing, and nothing else."""
    return api.validate_config(config, model), json


@app.command()
@_guard
def steps(json: JsonOpt = False):
    """Every pipeline step with its parameters, defaults and a one-line description."""
    return api.list_steps(), json


def main() -> None:
    app(prog_name="optcli")
