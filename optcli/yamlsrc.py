"""Safe YAML loading that remembers where every value came from.

`load_yaml(text, source)` returns plain Python values plus `marks`, a map from key path
(`steps[2].quantize.bits`) to 1-based line number, so validation errors can point at the line.
Only the YAML safe subset is accepted (no tags, no Python objects); duplicate keys are errors.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from optcli.errors import ConfigError

_PLAIN_TAGS = ("tag:yaml.org,2002:map", "tag:yaml.org,2002:seq")
_EXP_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def load_yaml(text: str, source: str) -> tuple[Any, dict[str, int]]:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"{source}{where}: not valid YAML: {problem}") from None
    marks: dict[str, int] = {}
    if root is None:
        return None, marks
    return _convert(root, "", marks, source), marks


def _convert(node: yaml.Node, path: str, marks: dict[str, int], source: str) -> Any:
    marks[path] = node.start_mark.line + 1
    if not isinstance(node, yaml.ScalarNode) and node.tag not in _PLAIN_TAGS:
        raise ConfigError(f"{source}:{node.start_mark.line + 1}: tag '{node.tag}' at "
                          f"'{path or '<top>'}' is not allowed (plain YAML only)")
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for knode, vnode in node.value:
            key = _scalar(knode, path, source)
            if not isinstance(key, str):
                raise ConfigError(f"{source}:{knode.start_mark.line + 1}: key {key!r} at "
                                  f"'{path or '<top>'}' must be a string")
            sub = f"{path}.{key}" if path else key
            if key in out:
                raise ConfigError(f"{source}:{knode.start_mark.line + 1}: duplicate key '{sub}'")
            out[key] = _convert(vnode, sub, marks, source)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_convert(v, f"{path}[{i}]", marks, source) for i, v in enumerate(node.value)]
    return _scalar(node, path, source)


def _scalar(node: yaml.Node, path: str, source: str) -> Any:
    if not isinstance(node, yaml.ScalarNode):
        raise ConfigError(f"{source}:{node.start_mark.line + 1}: a key at '{path or '<top>'}' "
                          "must be a plain value")
    if node.style is None and _EXP_FLOAT.fullmatch(node.value):
        return float(node.value)   # YAML 1.1 reads an unquoted 1e-3 as a string; users mean 0.001
    try:
        return yaml.constructor.SafeConstructor().construct_object(node, deep=True)
    except yaml.YAMLError as e:
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"{source}:{node.start_mark.line + 1}: bad value at "
                          f"'{path or '<top>'}': {problem}") from None
