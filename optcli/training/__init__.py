"""Training in NumPy: reverse-mode gradients of every op, a tape over the graph, losses,
optimizers, learning-rate schedules and compression-aware parametrizations; the `finetune`
step (optcli/steps/finetune.py) is built from these."""
