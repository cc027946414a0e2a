"""Kernels: `reference` (naive, obviously correct: the oracle) and `fast` (what runs).

Each table maps every op name in `optcli.ops.OPS` to `fn(**inputs, **attrs) -> np.ndarray`.
`bind` prepares one such call for running many times (the runtime's steps).
"""

from __future__ import annotations

import inspect
from typing import Any, Callable


def kernel_table(kind: str) -> dict[str, Callable]:
    if kind == "reference":
        from optcli.kernels.reference import REFERENCE
        return REFERENCE
    if kind == "fast":
        from optcli.kernels.fast import FAST
        return FAST
    raise ValueError(f"unknown kernel set {kind!r}; valid: fast, reference")


class _Ref:
    """An argument read at call time from the environment (a value computed by the run)."""
    __slots__ = ("name",)

    def __init__(self, name: str):
        self.name = name


def bind(fn: Callable, inputs: dict[str, Any], attrs: dict[str, Any],
         constants: dict[str, Any], decode: tuple[str, ...] = ()) -> Callable[[dict], Any]:
    """call(env) = fn(**inputs, **attrs), with every input value name found in `constants`
    (the weights) bound once and the others read from `env`; `decode` roles hold stored
    tensors decoded at each call. Arguments are bound positionally, once: a batch-1 model
    makes thousands of these calls a second, and per-call dict merging would cost more than
    small kernels do."""
    def arg(v: str) -> Any:
        return constants[v] if v in constants else _Ref(v)
    sig = inspect.signature(fn)
    kw = {r: ([arg(x) for x in v] if isinstance(v, list) else arg(v)) for r, v in inputs.items()}
    bound = sig.bind(**kw, **attrs)
    bound.apply_defaults()
    if bound.kwargs:
        raise TypeError(f"{fn.__name__}: kernels take positional-or-keyword parameters only")
    params = list(sig.parameters)
    return _caller(fn, list(bound.args), tuple(params.index(r) for r in decode))


def _caller(fn: Callable, args: list, decode: tuple[int, ...]) -> Callable[[dict], Any]:
    """The call: in the common case (run-time values first, constants after, nothing to
    decode) a single closure; otherwise a generic fill-in of the argument list."""
    dyn = [(i, a.name) for i, a in enumerate(args) if isinstance(a, _Ref)]
    lists = [i for i, a in enumerate(args) if isinstance(a, list)]
    if not lists and not decode and [i for i, _ in dyn] == list(range(len(dyn))):
        rest, names = tuple(args[len(dyn):]), [v for _, v in dyn]
        if len(names) == 1:
            v = names[0]
            return lambda env: fn(env[v], *rest)
        return lambda env: fn(*[env[v] for v in names], *rest)

    def call(env: dict) -> Any:
        a = args.copy()
        for i, v in dyn:
            a[i] = env[v]
        for i in lists:
            a[i] = [env[x.name] if isinstance(x, _Ref) else x for x in a[i]]
        for i in decode:
            a[i] = a[i].decode()
        return fn(*a)
    return call
