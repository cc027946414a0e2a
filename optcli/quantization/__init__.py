"""Weight quantization math for the `quantize` step (optcli/steps/quantize.py), apart from
the orchestration: grid.py (scales, zero points, codes, stored tensor), gptq.py (Frantar et al.
2023), awq.py + awq_graph.py (Lin et al. 2024), error.py (output error from the calibration
Hessian), sensitivity.py + mixed.py (`bits: auto`), hessians.py (X^T X of linear and conv
layers), layer.py (one layer), model.py (the walk over layers), precision.py (float16/bfloat16).
"""
