"""What kind of model a path holds, told from its content, never from its name alone.

    directory with config.json          -> "hf"          (Hugging Face layout)
    b"GGUF" magic                       -> "gguf"
    zip with <top>/data.pkl             -> "torch"       (torch.save zip format)
    zip with __optcli__.npy             -> "optcli"      (already imported)
    u64 header length + b"{"            -> "safetensors" (needs a config.json beside it)
    pickle protocol 2+ opcode           -> "torch"       (legacy torch.save format)
    protobuf tag 0x08 (ir_version)      -> "onnx"        (confirmed by the ONNX parser)
"""

from __future__ import annotations

import struct
import zipfile
from pathlib import Path

from optcli.errors import InputError

KINDS = ("hf", "gguf", "torch", "safetensors", "onnx")


def detect(path: Path) -> str:
    if path.is_dir():
        if (path / "config.json").is_file():
            return "hf"
        raise InputError(f"{path}: a folder without config.json is not a Hugging Face model")
    if not path.is_file():
        raise InputError(f"{path}: not found")
    with open(path, "rb") as f:
        head = f.read(16)
    if head[:4] == b"GGUF":
        return "gguf"
    if head[:4] == b"PK\x03\x04":
        return _zip_kind(path)
    if len(head) >= 9 and head[8:9] == b"{" and 2 <= struct.unpack("<Q", head[:8])[0] < 1 << 30:
        return "safetensors"
    if head[:1] == b"\x80" and 2 <= head[1] <= 5:
        return "torch"
    if head[:1] == b"\x08":
        return "onnx"
    raise InputError(f"{path}: cannot tell what kind of model this is (not a Hugging Face "
                     "folder, GGUF, safetensors, PyTorch checkpoint or ONNX file)")


def _zip_kind(path: Path) -> str:
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
    except zipfile.BadZipFile as e:
        raise InputError(f"{path}: corrupt zip archive: {e}") from None
    if any(n.endswith("/data.pkl") or n == "data.pkl" for n in names):
        return "torch"
    if "__optcli__.npy" in names:
        raise InputError(f"{path}: already an optcli model; nothing to import")
    raise InputError(f"{path}: a zip archive that is neither a PyTorch checkpoint nor an "
                     "optcli model")
