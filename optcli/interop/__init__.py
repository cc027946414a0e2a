"""Importers and exporters between optcli models and other formats (ONNX, ...)."""
