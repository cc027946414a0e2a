"""`optcli import`: one entry point over every importer, chosen by `detect` from the content.

Importers are imported lazily, so a missing optional extra (onnx, tokenizers) only matters
for the kind of file that needs it.
"""

from __future__ import annotations

from pathlib import Path

from optcli.errors import InputError
from optcli.graph import Model
from optcli.interop.detect import detect


def import_model(source: Path, arch: Path | None = None) -> tuple[str, Model]:
    """(kind, model) for any supported source; `arch` is needed by PyTorch state dicts only."""
    kind = detect(source)
    if arch is not None and kind != "torch":
        raise InputError(f"{source}: --arch applies to PyTorch checkpoints only, this is {kind}")
    if kind in ("hf", "safetensors"):
        from optcli.interop.hf import import_hf
        return kind, import_hf(source)
    if kind == "gguf":
        from optcli.interop.gguf_import import import_gguf
        return kind, import_gguf(source)
    if kind == "onnx":
        from optcli.interop.onnx_import import import_onnx
        return kind, import_onnx(source)
    if arch is None:
        raise InputError(f"{source}: a PyTorch state dict carries no architecture; pass "
                         "--arch SPEC.yaml (see configs/arch/lenet5_torch.yaml)")
    from optcli.interop.torch_checkpoint import import_torch
    return kind, import_torch(source, arch)
