"""The .npz model format: round trips, determinism, and one test per class of bad file."""

import json
import zipfile

import numpy as np
import pytest

from optcli import io
from optcli.errors import GraphError, InputError, ModelFormatError
from optcli.formats import DenseTensor, SparseTensor
from optcli.graph import Node
from optcli.io import MANIFEST_KEY, load_model, save_model, to_arrays
from tests.conftest import make_cnn, make_lm, make_mlp


@pytest.mark.parametrize("make", [make_mlp, make_cnn, make_lm])
def test_roundtrip_keeps_graph_and_tensors(tmp_path, make):
    m = make()
    save_model(m, tmp_path / "m.npz")
    back = load_model(tmp_path / "m.npz")
    assert back.graph == m.graph and back.task == m.task
    for name, t in m.tensors.items():
        np.testing.assert_array_equal(back.tensors[name].decode(), t.decode())


def test_compressed_encodings_roundtrip(tmp_path, mlp):
    w = mlp.tensors["fc1.weight"].decode()
    w[np.abs(w) < 0.5] = 0
    m = mlp.replace(tensors={**mlp.tensors, "fc1.weight": SparseTensor.from_dense(w)})
    save_model(m, tmp_path / "m.npz")
    back = load_model(tmp_path / "m.npz").tensors["fc1.weight"]
    assert back.encoding == "sparse"
    np.testing.assert_array_equal(back.decode(), w)


def test_saving_is_deterministic_byte_for_byte(tmp_path, mlp):
    save_model(mlp, tmp_path / "a.npz")
    save_model(mlp, tmp_path / "b.npz")
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()


def test_never_overwrites_without_force_nor_the_input(tmp_path, mlp):
    p = tmp_path / "m.npz"
    save_model(mlp, p)
    with pytest.raises(InputError, match="--force"):
        save_model(mlp, p)
    with pytest.raises(InputError, match="input"):
        save_model(mlp, p, force=True, protect=(p,))


def test_failed_write_leaves_nothing(tmp_path, mlp, monkeypatch):
    def boom(arrays):
        raise RuntimeError("simulated failure during verification")
    monkeypatch.setattr(io, "_from_arrays", boom)
    with pytest.raises(RuntimeError):
        save_model(mlp, tmp_path / "m.npz")
    assert list(tmp_path.iterdir()) == []


def _write_arrays(path, arrays):
    with open(path, "wb") as f:
        io.write_npz(f, arrays)
    return path


def _manifest(m):
    arrays = to_arrays(m)
    return arrays, json.loads(arrays[MANIFEST_KEY].tobytes())


def _with_manifest(arrays, man):
    return {**arrays, MANIFEST_KEY: np.frombuffer(json.dumps(man).encode(), np.uint8)}


def test_truncated_file(tmp_path, mlp):
    p = tmp_path / "m.npz"
    save_model(mlp, p)
    p.write_bytes(p.read_bytes()[:-500])
    with pytest.raises(ModelFormatError, match="m.npz"):
        load_model(p)


def test_garbage_file(tmp_path):
    p = tmp_path / "m.npz"
    p.write_bytes(b"not a zip at all" * 10)
    with pytest.raises(ModelFormatError, match="not a valid .npz"):
        load_model(p)


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_model(tmp_path / "nope.npz")


def test_pickled_object_array_is_refused(tmp_path, mlp):
    arrays = to_arrays(mlp)
    p = tmp_path / "evil.npz"
    np.savez(p, **arrays, evil=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ModelFormatError, match="pickle"):
        load_model(p)


@pytest.mark.parametrize("sizes, member, where, kind", [
    ((64, 32, 16, 10), "fc1.weight::data.npy", 200, zipfile.ZIP_DEFLATED),   # inside the data
    ((64, 32, 16, 10), "fc2.bias::data.npy", 5, zipfile.ZIP_DEFLATED),       # at its start
    ((300, 200, 10), "fc1.weight::data.npy", 5000, zipfile.ZIP_STORED),      # a large member
])
def test_corrupt_member_crc(tmp_path, sizes, member, where, kind):
    p = tmp_path / "m.npz"
    save_model(make_mlp(sizes=sizes), p)
    raw = bytearray(p.read_bytes())
    with zipfile.ZipFile(p) as zf:
        info = zf.getinfo(member)
    assert info.compress_type == kind
    raw[info.header_offset + 30 + len(info.filename) + where] ^= 0xFF    # 30: local header
    p.write_bytes(bytes(raw))
    with pytest.raises(ModelFormatError, match=rf"m\.npz: member '{member}' is corrupt"):
        load_model(p)


def test_not_an_optcli_model(tmp_path):
    p = tmp_path / "plain.npz"
    np.savez(p, x=np.zeros(3))
    with pytest.raises(ModelFormatError, match="not an optcli model"):
        load_model(p)


def test_newer_format_version(tmp_path, mlp):
    arrays, man = _manifest(mlp)
    man["format_version"] = 99
    p = _write_arrays(tmp_path / "m.npz", _with_manifest(arrays, man))
    with pytest.raises(ModelFormatError, match="newer"):
        load_model(p)


def test_nan_weight_names_the_tensor(tmp_path, mlp):
    arrays, _ = _manifest(mlp)
    arrays["fc2.weight::data"] = arrays["fc2.weight::data"].copy()
    arrays["fc2.weight::data"][0, 0] = np.nan
    p = _write_arrays(tmp_path / "m.npz", arrays)
    with pytest.raises(ModelFormatError, match="fc2.weight.*NaN"):
        load_model(p)


def test_declared_shape_mismatch(tmp_path, mlp):
    arrays, man = _manifest(mlp)
    man["tensors"]["fc1.weight"]["shape"] = [32, 65]
    p = _write_arrays(tmp_path / "m.npz", _with_manifest(arrays, man))
    with pytest.raises(ModelFormatError, match="fc1.weight.*shape"):
        load_model(p)


def test_unknown_op_and_dangling_input(tmp_path, mlp):
    arrays, man = _manifest(mlp)
    man["graph"]["nodes"][1]["op"] = "frobnicate"
    with pytest.raises(GraphError, match="unknown op"):
        load_model(_write_arrays(tmp_path / "a.npz", _with_manifest(arrays, man)))
    arrays, man = _manifest(mlp)
    man["graph"]["nodes"][1]["inputs"]["x"] = "nowhere"
    with pytest.raises(GraphError, match="nowhere"):
        load_model(_write_arrays(tmp_path / "b.npz", _with_manifest(arrays, man)))


def test_cycle_is_rejected(mlp):
    nodes = list(mlp.graph.nodes)
    nodes[0], nodes[1] = nodes[1], nodes[0]   # a consumer before its producer
    bad = mlp.replace(graph=mlp.graph.__class__(tuple(nodes), mlp.graph.inputs,
                                                mlp.graph.outputs))
    with pytest.raises(GraphError, match="topologically"):
        io.validate(bad)


def test_bad_attribute_is_rejected(mlp):
    n = mlp.graph.nodes[0]
    nodes = (Node(n.name, n.op, n.inputs, n.outputs, {"axis": "one"}),) + mlp.graph.nodes[1:]
    bad = mlp.replace(graph=mlp.graph.__class__(nodes, mlp.graph.inputs, mlp.graph.outputs))
    with pytest.raises(GraphError, match="attribute 'axis'"):
        io.validate(bad)


def test_zip_bomb_claim_is_refused(tmp_path, monkeypatch, mlp):
    p = tmp_path / "m.npz"
    save_model(mlp, p)
    monkeypatch.setattr(io, "MAX_TOTAL_BYTES", 1000)
    with pytest.raises(ModelFormatError, match="refused"):
        load_model(p)


def test_dense_int_table_survives(tmp_path):
    t = DenseTensor(np.arange(4, dtype=np.int64))
    back = DenseTensor.from_stored("ids", (4,), "int64", t.arrays(), {})
    assert back.dtype == "int64"


def test_small_members_are_deflated_and_large_ones_stored(tmp_path):
    big = make_mlp(sizes=(300, 200, 10))               # fc1.weight: 240 KB > 64 KiB
    p = tmp_path / "m.npz"
    save_model(big, p)
    with zipfile.ZipFile(p) as zf:
        kinds = {i.filename: i.compress_type for i in zf.infolist()}
    assert kinds["fc1.weight::data.npy"] == zipfile.ZIP_STORED
    assert kinds["fc1.bias::data.npy"] == zipfile.ZIP_DEFLATED
    assert kinds[f"{MANIFEST_KEY}.npy"] == zipfile.ZIP_DEFLATED
    with np.load(p, allow_pickle=False) as npz:                  # plain NumPy reads it
        np.testing.assert_array_equal(npz["fc1.weight::data"], big.tensors["fc1.weight"].data)


def test_member_bytes_is_exactly_what_each_array_adds_to_the_file(tmp_path):
    """The encode step decides with io.member_bytes: it must match write_npz to the byte."""
    rng = np.random.default_rng(0)
    arrays = {"a::codes": rng.integers(0, 5, 3000).astype(np.uint8),            # deflated
              "b::values": rng.standard_normal(40000).astype(np.float32),       # stored
              "c::bias": np.arange(10, dtype=np.float32)}
    empty, full = tmp_path / "e.npz", tmp_path / "f.npz"
    with open(empty, "wb") as f:
        io.write_npz(f, {})
    with open(full, "wb") as f:
        io.write_npz(f, arrays)
    added = full.stat().st_size - empty.stat().st_size
    assert added == sum(io.member_bytes(k, a) for k, a in arrays.items())
