"""The exception hierarchy and the exit codes it maps to, in one place.

Every error a user can cause is an `OptcliError` whose message is one line naming the file,
key path, layer or tensor at fault. The CLI prints that line and exits with `exit_code`:

    0  ok
    1  runtime failure (a bug, a numerical failure inside a step)
    2  usage, config or input error (bad YAML, corrupt model, shape mismatch, NaN weights)
    3  a quality gate failed (the report is still written)
    130 interrupted (Ctrl-C)
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_RUNTIME = 1
EXIT_INPUT = 2
EXIT_GATE = 3
EXIT_INTERRUPTED = 130


class OptcliError(Exception):
    """Base class: a one-line message and an exit code. A message quotes names from the
    user's files, which may hold any character: line breaks in it are written as the escapes
    \\n and \\r, so it stays one line whatever it quotes."""

    exit_code = EXIT_RUNTIME

    def __init__(self, message: object = "", *args: object) -> None:
        super().__init__(str(message).replace("\r", "\\r").replace("\n", "\\n"), *args)


class InputError(OptcliError):
    """Bad input from the user: a file, a flag, a config. Exit 2."""

    exit_code = EXIT_INPUT


class ModelFormatError(InputError):
    """A model file that is corrupt, truncated, hostile or of an unknown format version."""


class ConfigError(InputError):
    """A pipeline YAML that does not validate: names the key path (and line when known)."""


class DataError(InputError):
    """An input or dataset file that does not fit the model (shape, dtype, NaN)."""


class GraphError(InputError):
    """A graph that is not executable: a cycle, a missing input, bad attributes."""


class StepError(OptcliError):
    """A step that failed while running (numerical failure, unsupported layer). Exit 1."""


class GateFailed(OptcliError):
    """A quality gate was not met. Exit 3."""

    exit_code = EXIT_GATE
