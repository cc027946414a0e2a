"""Declared parameters: the one mechanism behind every YAML section and every step's Config.

A config class is a frozen dataclass whose fields are made with `param(...)`, carrying the
documentation, type, choices and range check. `build(cls, raw, path, ...)` validates a YAML
mapping against it (unknown keys get "did you mean", errors name the key path and line), and
`describe(cls)` lists the parameters for `optcli steps` — so docs and validation cannot drift.
"""

from __future__ import annotations

import dataclasses
import difflib
from typing import Any, Callable

from optcli.errors import ConfigError


def param(default: Any, doc: str, *, choices: tuple | None = None, type: type | None = None,
          check: Callable[[Any], bool] | None = None, check_doc: str = "",
          required: bool = False) -> Any:
    """A dataclass field with its validation rules; `type` defaults to the default's type."""
    kind = type or (default.__class__ if default is not None else None)
    meta = {"doc": doc, "choices": choices, "type": kind, "check": check,
            "check_doc": check_doc, "required": required}
    if isinstance(default, list):
        return dataclasses.field(default_factory=lambda: list(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def build(cls: type, raw: Any, path: str, source: str, marks: dict[str, int]) -> Any:
    """An instance of `cls` from a YAML mapping, or ConfigError naming path and line."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        _fail(source, marks, path, f"'{path}' must be a mapping of parameters")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in raw:
        if key not in fields:
            hint = difflib.get_close_matches(key, fields, n=1)
            did = f"did you mean '{hint[0]}'? " if hint else ""
            _fail(source, marks, f"{path}.{key}", f"unknown key '{path}.{key}'; {did}"
                  f"valid keys: {', '.join(fields)}")
    values = {}
    for name, f in fields.items():
        if name in raw:
            values[name] = _check(f, raw[name], f"{path}.{name}", source, marks)
        elif f.metadata.get("required"):
            _fail(source, marks, path, f"'{path}' needs '{name}' ({f.metadata['doc']})")
    return cls(**values)


def _check(f: dataclasses.Field, value: Any, path: str, source: str,
           marks: dict[str, int]) -> Any:
    meta = f.metadata
    kind = meta.get("type")
    if value is None and f.default is None and not meta.get("required"):
        return None
    ok = _type_ok(kind, value)
    if kind is float and ok:
        value = float(value)
    if not ok:
        _fail(source, marks, path, f"'{path}' must be {_type_name(kind)}, got {value!r}")
    if meta.get("choices") and value not in meta["choices"]:
        hint = difflib.get_close_matches(str(value), [str(c) for c in meta["choices"]], n=1)
        did = f" (did you mean '{hint[0]}'?)" if hint else ""
        _fail(source, marks, path, f"'{path}' is {value!r}{did}; valid: "
              f"{', '.join(map(str, meta['choices']))}")
    if meta.get("check") and not meta["check"](value):
        _fail(source, marks, path, f"'{path}' = {value!r} is out of range: {meta['check_doc']}")
    return value


def _type_ok(kind: type | None, value: Any) -> bool:
    if kind is None:
        return True
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is list:
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    return isinstance(value, kind)


def _type_name(kind: type | None) -> str:
    return {float: "a number", int: "an integer", bool: "true or false", str: "a string",
            list: "a list of strings"}.get(kind, str(kind))


_SHORT_TYPE = {float: "number", int: "integer", bool: "bool", str: "string", list: "list"}


def _fail(source: str, marks: dict[str, int], path: str, message: str) -> None:
    line = marks.get(path) or marks.get(path.rsplit(".", 1)[0])
    where = f"{source}:{line}" if line else source
    raise ConfigError(f"{where}: {message}")


def describe(cls: type) -> list[dict[str, Any]]:
    """Every parameter of a config class: name, type, default, choices, doc."""
    out = []
    for f in dataclasses.fields(cls):
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING \
            else f.default
        m = f.metadata
        out.append({"name": f.name, "type": _SHORT_TYPE.get(m.get("type"), "any"),
                    "default": None if m.get("required") else default,
                    "required": bool(m.get("required")), "choices": m.get("choices"),
                    "doc": m["doc"] + (f" ({m['check_doc']})" if m.get("check_doc") else "")})
    return out


def as_dict(config: Any) -> dict[str, Any]:
    """A config instance as the resolved plain dict recorded in reports and provenance."""
    return dataclasses.asdict(config)
