"""The pieces of `scripts/train_sample_models.py`, which trains the models in `sample_models/`.

A development package, never imported by optcli (it and its entry point are the only places
torch is used). One module per concern:

- `recipes.py`  the training recipes (`Recipe`, `RECIPES`) and the provenance `SOURCE`;
- `progress.py` `log`: progress to stderr, so stdout stays the JSON summary;
- `fashion.py`  Fashion-MNIST: IDX reading, the data files, LeNet-300-100 / LeNet-5 and their
                export to optcli graphs;
- `charlm.py`   The Devil's Dictionary text, the character tokenizer and windows, the pre-LN
                GPT and its export;
- `export.py`   torch layers (linear, conv, layernorm) as optcli nodes, shared by both exports;
- `train.py`    the training loops and the `--state-dir` cache;
- `verify.py`   torch-vs-optcli output checks, accuracy and perplexity;
- `build.py`    one model end to end: train, export, verify, evaluate, save.

Run it through the entry point: `python scripts/train_sample_models.py --help`.
"""
