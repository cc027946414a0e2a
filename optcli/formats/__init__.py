"""Weight storage formats. ENCODINGS maps the manifest's `encoding` name to its class."""

from optcli.formats.base import StoredTensor
from optcli.formats.dense import DenseTensor
from optcli.formats.quantized import QuantizedTensor
from optcli.formats.sparse import SparseTensor

ENCODINGS: dict[str, type[StoredTensor]] = {
    "dense": DenseTensor,
    "sparse": SparseTensor,
    "quantized": QuantizedTensor,
}

__all__ = ["ENCODINGS", "StoredTensor", "DenseTensor", "SparseTensor", "QuantizedTensor"]
