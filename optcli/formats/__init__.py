"""Weight storage formats. ENCODINGS maps the manifest's `encoding` name to its class."""

from optcli.formats.base import StoredTensor
from optcli.formats.bfloat16 import BFloat16Tensor
from optcli.formats.codebook import CodebookTensor
from optcli.formats.dense import DenseTensor
from optcli.formats.entropy import EntropyTensor
from optcli.formats.quantized import QuantizedTensor
from optcli.formats.sparse import SparseTensor

ENCODINGS: dict[str, type[StoredTensor]] = {
    "dense": DenseTensor,
    "sparse": SparseTensor,
    "quantized": QuantizedTensor,
    "codebook": CodebookTensor,
    "entropy": EntropyTensor,
    "bfloat16": BFloat16Tensor,
}

__all__ = ["ENCODINGS", "StoredTensor", "CodebookTensor", "DenseTensor", "SparseTensor",
           "QuantizedTensor", "EntropyTensor", "BFloat16Tensor"]
