"""Activation quantization: calibration observers, streamed statistics of layer inputs and
SmoothQuant's rescaling (steps `activations` and `smoothquant`)."""
