"""Lossless entropy coders of integer symbol streams (pure NumPy). See huffman.py."""

from optcli.coding.huffman import CODED_DTYPES, HuffmanCode, decode, empirical_entropy, encode

__all__ = ["CODED_DTYPES", "HuffmanCode", "decode", "empirical_entropy", "encode"]
