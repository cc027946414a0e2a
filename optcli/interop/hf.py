"""Import a Hugging Face checkpoint (config.json + model.safetensors) into an optcli Model.

    model = import_hf(Path("real_models/minilm"))     # a folder, or
    model = import_hf(Path("ckpt/model.safetensors")) # a weights file with config.json beside it

The layout is that of `transformers` `save_pretrained` (config.json, model.safetensors or
model.safetensors.index.json + shards, tokenizer.json) plus, for sentence-transformers models,
modules.json, 1_Pooling/config.json and sentence_bert_config.json. `config["model_type"]`
chooses the architecture: "bert" (optcli.interop.bert) or "llama" (optcli.interop.llama).
The tokenizer and the pooling travel with the model in `model.extra`, so `eval` can take text:

    extra["tokenizer"] = {"kind": "hf_json", "json": <tokenizer.json>, "max_length": 256}
    extra["pooling"]   = {"mode": "mean", "normalize": true}
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import numpy as np

from optcli.errors import InputError, ModelFormatError
from optcli.graph import Model
from optcli.interop.safetensors import read_safetensors
from optcli.io import file_sha256

SUPPORTED = ("bert", "llama")
DEFAULT_MAX_LENGTH = 256      # sentence-transformers' usual max_seq_length


def import_hf(path: Path) -> Model:
    """The model at `path` (HF folder or .safetensors file), tokenizer and pooling attached."""
    path = Path(path)
    folder = path if path.is_dir() else path.parent
    config = read_json(folder / "config.json", required=True)
    model_type = config.get("model_type")
    if model_type not in SUPPORTED:
        raise InputError(f"{folder / 'config.json'}: model_type {model_type!r} is not "
                         f"supported (supported: {', '.join(SUPPORTED)})")
    files = _weight_files(path)
    tensors: dict[str, np.ndarray] = {}
    for f in files:
        tensors.update(read_safetensors(f))
    pooling = read_pooling(folder) if model_type == "bert" else None
    try:
        model = _convert(model_type)(config, tensors, folder.resolve().name, pooling)
    except ModelFormatError as e:
        msg = str(e)
        raise ModelFormatError(msg if msg.startswith(str(folder)) else f"{files[0]}: {msg}") \
            from None
    extra = dict(model.extra)
    tokenizer = read_tokenizer(folder)
    if tokenizer is not None:
        extra["tokenizer"] = tokenizer
    if pooling is not None:
        extra["pooling"] = pooling
    provenance = {**model.provenance, "source": str(path), "format": "safetensors",
                  "sha256": file_sha256(files[0]) if len(files) == 1
                  else [file_sha256(f) for f in files]}
    return model.replace(extra=extra, provenance=provenance)


def _convert(model_type: str) -> Callable[..., Model]:
    """The converter for `model_type`: (config, tensors, name, pooling) -> Model."""
    if model_type == "bert":
        from optcli.interop.bert import from_hf_bert
        return from_hf_bert
    from optcli.interop.llama import from_hf_tensors  # written alongside; imported lazily

    return lambda config, tensors, name, pooling: from_hf_tensors(config, tensors, name,
                                                                  rope="half")


def _weight_files(path: Path) -> list[Path]:
    """The .safetensors file(s): `path` itself, the folder's model.safetensors, or its shards."""
    if path.is_file():
        return [path]
    single, index = path / "model.safetensors", path / "model.safetensors.index.json"
    if single.is_file():
        return [single]
    if index.is_file():
        weight_map = read_json(index, required=True).get("weight_map")
        if not isinstance(weight_map, dict) or not weight_map:
            raise ModelFormatError(f"{index}: 'weight_map' must be a non-empty object")
        shards = sorted({str(v) for v in weight_map.values()})
        bad = [s for s in shards if Path(s).name != s or not (path / s).is_file()]
        if bad:
            raise ModelFormatError(f"{index}: shard {bad[0]!r} is not a file in {path}")
        return [path / s for s in shards]
    raise InputError(f"{path}: no model.safetensors (or model.safetensors.index.json) found")


def read_json(path: Path, required: bool = False) -> dict[str, Any] | None:
    """A JSON object from `path`; None when absent and not required."""
    if not path.is_file():
        if required:
            raise InputError(f"{path}: not found (a Hugging Face model needs it)")
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelFormatError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise ModelFormatError(f"{path}: expected a JSON object")
    return data


def read_pooling(folder: Path) -> dict[str, Any] | None:
    """sentence-transformers pooling from modules.json: {"mode", "normalize"}, or None."""
    modules = _read_modules(folder)
    if modules is None:
        return None
    kinds = {str(m.get("type", "")).rsplit(".", 1)[-1]: m for m in modules}
    if "Pooling" not in kinds:
        return None
    pool_dir = folder / str(kinds["Pooling"].get("path", ""))
    if not pool_dir.resolve().is_relative_to(folder.resolve()):
        raise ModelFormatError(f"{folder / 'modules.json'}: Pooling path escapes the folder")
    cfg = read_json(pool_dir / "config.json", required=True)
    modes = [k.removeprefix("pooling_mode_").removesuffix("_tokens").removesuffix("_token")
             for k, v in cfg.items() if k.startswith("pooling_mode_") and v is True]
    if len(modes) != 1:
        raise InputError(f"{pool_dir / 'config.json'}: exactly one pooling mode must be set, "
                         f"got {modes or 'none'}")
    return {"mode": modes[0], "normalize": "Normalize" in kinds}


def _read_modules(folder: Path) -> list[dict[str, Any]] | None:
    path = folder / "modules.json"
    if not path.is_file():
        return None
    try:
        modules = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelFormatError(f"{path}: not valid JSON ({e})") from None
    if not (isinstance(modules, list) and all(isinstance(m, dict) for m in modules)):
        raise ModelFormatError(f"{path}: expected a list of module objects")
    return modules


def read_tokenizer(folder: Path) -> dict[str, Any] | None:
    """tokenizer.json kept verbatim, with sentence-transformers' max_seq_length."""
    path = folder / "tokenizer.json"
    if not path.is_file():
        return None
    text = path.read_text(encoding="utf-8")
    try:
        json.loads(text)
    except json.JSONDecodeError as e:
        raise ModelFormatError(f"{path}: not valid JSON ({e})") from None
    st = read_json(folder / "sentence_bert_config.json") or {}
    max_length = st.get("max_seq_length", DEFAULT_MAX_LENGTH)
    if not (isinstance(max_length, int) and max_length > 0):
        raise ModelFormatError(f"{folder / 'sentence_bert_config.json'}: max_seq_length must "
                               f"be a positive integer, got {max_length!r}")
    return {"kind": "hf_json", "json": text, "max_length": max_length}

