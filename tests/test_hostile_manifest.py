"""A hostile or mangled manifest must always end in a one-line input error (exit 2), never
in a crash: random mutations of a valid manifest are loaded and must raise InputError or load."""

import json

import numpy as np
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from optcli import io
from optcli.errors import InputError
from tests.conftest import make_cnn

_BASE_ARRAYS = io.to_arrays(make_cnn())
_BASE = json.loads(_BASE_ARRAYS[io.MANIFEST_KEY].tobytes())
_JUNK = st.one_of(st.none(), st.booleans(), st.integers(-3, 10**12), st.floats(allow_nan=True),
                  st.text(max_size=5), st.lists(st.integers(-2, 5), max_size=3),
                  st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))


def _paths(obj, prefix=()):
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, prefix + (i,))


_ALL_PATHS = [p for p in _paths(_BASE) if p]


def _mutate(man, path, value, delete):
    obj = man
    for key in path[:-1]:
        obj = obj[key]
    if delete and isinstance(obj, dict):
        del obj[path[-1]]
    else:
        obj[path[-1]] = value


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(_ALL_PATHS), _JUNK, st.booleans()), min_size=1,
                max_size=3))
@example(edits=[(("graph", "nodes", 0, "inputs", "bias"), "\n", False)])  # found by a CI run
def test_mangled_manifests_fail_cleanly(tmp_path_factory, edits):
    man = json.loads(json.dumps(_BASE))
    for path, value, delete in edits:
        try:
            _mutate(man, path, value, delete)
        except (KeyError, IndexError, TypeError):
            continue   # an earlier edit removed the parent
    raw = json.dumps(man, allow_nan=True).encode()
    arrays = {**_BASE_ARRAYS, io.MANIFEST_KEY: np.frombuffer(raw, np.uint8)}
    p = tmp_path_factory.mktemp("m") / "m.npz"
    with open(p, "wb") as f:
        io.write_npz(f, arrays)
    try:
        io.load_model(p)
    except InputError as e:
        assert "\n" not in str(e)
