"""Calibration statistics of layer inputs, streamed over the calibration set once.

For each selected `linear` node y = x @ W.T, its input activation x (flattened to rows
X[N_tokens, in]) is summarised without ever storing all of X:
- `sq_norm[in]` = sum over rows of x^2, Wanda's ||X_j||_2^2 (Sun et al. 2023);
- `rows` = N_tokens;
- with hessian=True, `H[in, in]` = X^T X accumulated in float64, SparseGPT's / GPTQ's layer
  Hessian up to the factor 2/N (Frantar & Alistarh 2023; Frantar et al. 2022).
Padding is left out: when the model has an input meaning 'attention_mask' and x is
[B, T, in], only the rows of real tokens (mask > 0) count; samples are batched by length
and each batch is cut after its last real token (the sums do not depend on order, and an
attention mask makes padding invisible to real tokens), so padding costs no compute either.
Layers that read the same value (attention q/k/v read one layernorm) share one statistics
object, so memory is at most one Hessian per selected layer.

How: a copy of the model whose graph outputs also include every selected node's `x`, run
with the fast Runtime batch by batch. Also here: the damped inverse-Hessian Cholesky factor
that OBS-style methods (SparseGPT, later GPTQ) share.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from optcli.errors import StepError
from optcli.graph import Model, Node, ValueInfo
from optcli.runtime import Runtime


@dataclass
class LayerInputs:
    """Statistics of one layer's input X[rows, in] (`value` is the graph value it reads)."""

    layer: str
    value: str
    sq_norm: np.ndarray                 # [in] float64, sum_rows x^2
    rows: int = 0
    hessian: np.ndarray | None = None   # [in, in] float64, X^T X (not divided by rows)

    def add(self, x: np.ndarray, tokens: np.ndarray | None = None) -> None:
        """Accumulate a batch x[..., in]; with `tokens` (bool [B, T]) only x[tokens] rows."""
        if tokens is not None and x.shape[:-1] == tokens.shape:
            x = x[tokens]
        x = np.asarray(x, np.float64).reshape(-1, self.sq_norm.shape[0])   # [rows_b, in]
        self.sq_norm += np.einsum("ij,ij->j", x, x)
        self.rows += x.shape[0]
        if self.hessian is not None:
            self.hessian += x.T @ x


def layer_inputs(model: Model, nodes: list[Node], data: dict[str, np.ndarray],
                 batch_size: int = 32, hessian: bool = False) -> dict[str, LayerInputs]:
    """Node name -> statistics of its input over `data` (graph input name -> [N, ...])."""
    conv = [n.name for n in nodes if n.op != "linear"]
    if conv:
        raise StepError(f"wanda/sparsegpt support linear layers; exclude conv layers "
                        f"({', '.join(conv)}) with `exclude:`")
    by_value: dict[str, LayerInputs] = {}
    out = {}
    for n in nodes:
        v = n.inputs["x"]
        if v not in by_value:
            d_in = model.tensors[n.inputs["weight"]].shape[1]
            by_value[v] = LayerInputs(n.name, v, np.zeros(d_in),
                                      hessian=np.zeros((d_in, d_in)) if hessian else None)
        out[n.name] = by_value[v]
    for batch in stream_values(model, list(by_value), data, batch_size):
        for v, stats in by_value.items():
            stats.add(batch[v])
    return out


def stream_values(model: Model, values: list[str], data: dict[str, np.ndarray],
                  batch_size: int = 32) -> Iterator[dict[str, np.ndarray]]:
    """Per calibration batch, {value: x} for each graph value in `values`, from one run of
    the model with those values as extra outputs. With an attention mask, a [B, T, D] value
    comes as its real tokens only, x[mask > 0] ([tokens, D]); other values (conv inputs
    [B, C, H, W]) as they are. Every calibration statistic is fed from here."""
    runtime = Runtime(_probe(model, values))
    mask = next((vi.name for vi in model.graph.inputs if vi.meaning == "attention_mask"), None)
    for feeds in _batches(data, mask, batch_size):
        res = runtime.run(feeds)
        tokens = feeds[mask] > 0 if mask in feeds else None                  # [B, T]
        yield {v: res[v][tokens] if tokens is not None and res[v].shape[:-1] == tokens.shape
               else res[v] for v in values}


def _batches(data: dict[str, np.ndarray], mask: str | None, batch_size: int):
    """Feeds of at most batch_size samples; with an attention mask, sorted by length and
    trimmed after the batch's last real token."""
    n = len(next(iter(data.values())))
    if mask not in data:
        for i in range(0, n, batch_size):
            yield {k: a[i:i + batch_size] for k, a in data.items()}
        return
    m = data[mask]                                                           # [N, T]
    order = np.argsort((m > 0).sum(axis=1), kind="stable")
    for i in range(0, n, batch_size):
        idx = order[i:i + batch_size]
        t = int(np.flatnonzero((m[idx] > 0).any(axis=0)).max(initial=0)) + 1
        yield {k: a[idx][:, :t] if a.shape[:2] == m.shape else a[idx] for k, a in data.items()}


def _probe(model: Model, values: list[str]) -> Model:
    """The part of the model that computes `values`, with them as its outputs: the nodes they
    depend on, the graph inputs and tensors those read (later layers are never run, so a pass
    for the first layers costs a fraction of the model; sequential calibration runs one pass
    per group of layers)."""
    need, keep = set(values), []
    for n in reversed(model.graph.nodes):
        if any(o in need for o in n.outputs):
            keep.append(n)
            need.update(n.input_names())
    graph = dataclasses.replace(
        model.graph, nodes=tuple(reversed(keep)),
        inputs=tuple(vi for vi in model.graph.inputs if vi.name in need),
        outputs=tuple(ValueInfo(v, ("batch",)) for v in values))
    return model.replace(graph=graph, tensors={k: t for k, t in model.tensors.items()
                                               if k in need})


def inverse_hessian_upper(h: np.ndarray, damping: float, layer: str,
                          retries: int = 3) -> np.ndarray:
    """U[in, in] upper triangular with U^T U = (H + lambda I)^-1, lambda = damping * mean(diag H).

    H is X^T X / rows (float64). Inputs that are always zero (diag 0) get diag 1 so H stays
    invertible; their weights then see no correlation with the others. If a Cholesky fails
    (H nearly singular, e.g. fewer tokens than inputs) lambda grows x10, up to `retries` times.
    """
    h = h.copy()
    dead = np.diag(h) == 0
    h[dead, dead] = 1.0
    lam = damping * float(np.mean(np.diag(h)))
    for _ in range(retries + 1):
        try:
            lower = np.linalg.cholesky(h + lam * np.eye(len(h)))       # H = L L^T
            l_inv = np.linalg.inv(lower)                                 # L^-1 (triangular)
            return np.linalg.cholesky(l_inv.T @ l_inv).T                 # H^-1 = U^T U
        except np.linalg.LinAlgError:
            lam *= 10
    raise StepError(f"layer '{layer}': the input Hessian is not positive definite even with "
                    f"damping x{10 ** retries}; use more calibration samples or a larger "
                    "`damping`")
