"""Truncated SVD of a weight matrix, plain or whitened by the layer's input statistics.

A linear layer y = x @ W.T with W[out, in] becomes y = (x @ B.T) @ A.T with A[out, r],
B[r, in]: r * (in + out) parameters instead of in * out, so it saves only when
r < in * out / (in + out).

- plain: W = U S V^T (Eckart-Young): the rank-r truncation is the best one in Frobenius norm,
  and its error is exactly sqrt(sum of the discarded s_i^2).
- whitened (data-aware): minimise the layer's *output* error ||(W - A B) X^T||_F over the
  calibration inputs X[rows, in] instead of the weight error. With the Gram matrix
  G = X^T X = L L^T (Cholesky), ||E X^T||_F^2 = tr(E G E^T) = ||E L||_F^2, so the best
  rank-r A B is the truncated SVD of W L mapped back by L^-1:
  W L = U S V^T  ->  A = U_r S_r^1/2,  B = S_r^1/2 V_r^T L^-1.
  Wang, Zheng, Wan, Zhang, "SVD-LLM: Truncation-aware Singular Value Decomposition for Large
  Language Model Compression", 2024 (Cholesky whitening); Yuan et al., "ASVD: Activation-aware
  Singular Value Decomposition for Compressing Large Language Models", 2023.
  G is rank-deficient when there are fewer tokens than inputs or inputs that are always zero,
  so a ridge `damping` * mean(diag G) is added to its diagonal before the Cholesky.

The singular values are split evenly (S^1/2 on each side) so A and B have similar magnitudes
in float32. Everything is computed in float64 and returned as float32.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from optcli.errors import StepError


@dataclass(frozen=True)
class Decomposition:
    """SVD of W (plain) or of W L (whitened): u[out, k], s[k] descending, vt[k, in],
    k = min(out, in); `lower` is L[in, in] with G + lambda I = L L^T (None when plain)."""

    u: np.ndarray
    s: np.ndarray
    vt: np.ndarray
    lower: np.ndarray | None = None

    def factors(self, rank: int) -> tuple[np.ndarray, np.ndarray]:
        """A[out, rank], B[rank, in] (float32) with A @ B the rank-`rank` approximation."""
        root = np.sqrt(self.s[:rank])
        a = self.u[:, :rank] * root                       # U_r S_r^1/2        [out, r]
        bt = self.vt[:rank].T * root                      # V_r S_r^1/2        [in, r]
        if self.lower is not None:                        # B^T = L^-T V_r S_r^1/2
            bt = np.linalg.solve(self.lower.T, bt)
        return a.astype(np.float32), np.ascontiguousarray(bt.T, dtype=np.float32)


def decompose(w: np.ndarray, gram: np.ndarray | None = None,
              damping: float = 0.01) -> Decomposition:
    """The plain SVD of w[out, in], or with gram[in, in] = X^T X the whitened one."""
    w64 = np.asarray(w, np.float64)
    lower = None if gram is None else whitening(gram, damping)
    target = w64 if lower is None else w64 @ lower        # [out, in]
    u, s, vt = np.linalg.svd(target, full_matrices=False)
    return Decomposition(u, s, vt, lower)


def whitening(gram: np.ndarray, damping: float, retries: int = 3) -> np.ndarray:
    """L[in, in] lower triangular with L L^T = G + lambda I, lambda = damping * mean(diag G).

    The scale of G (a sum over tokens) does not change the optimal factors, so lambda is
    relative to it. If the Cholesky still fails (round-off on a nearly singular G) lambda
    grows x10, up to `retries` times."""
    g = np.asarray(gram, np.float64)
    scale = float(np.mean(np.diag(g)))
    if not scale > 0:
        raise StepError("the calibration inputs of a layer are all zero; cannot whiten")
    lam = damping * scale
    for _ in range(retries + 1):
        try:
            return np.linalg.cholesky(g + lam * np.eye(len(g)))
        except np.linalg.LinAlgError:
            lam *= 10
    raise StepError(f"the input Gram matrix is not positive definite even with damping "
                    f"x{10 ** retries}; use more calibration samples or a larger `damping`")


def choose_rank(s: np.ndarray, shape: tuple[int, int], rank: int | None = None,
                energy: float | None = None, params: float | None = None) -> int:
    """The rank from exactly one criterion: a fixed `rank` (capped at min(out, in)); the
    smallest rank keeping `energy` of sum(s^2); or the largest rank whose factors hold at most
    `params` * out * in parameters (at least 1)."""
    out, inp = shape
    k = len(s)
    if rank is not None:
        return max(1, min(rank, k))
    if energy is not None:
        e = np.cumsum(np.asarray(s, np.float64) ** 2)
        if e[-1] == 0:
            return 1
        # 1e-12 slack: energy 1.0 must not miss full rank through cumsum round-off
        return int(min(np.searchsorted(e / e[-1], energy - 1e-12) + 1, k))
    if params is not None:
        return max(1, min(int(params * out * inp // (out + inp)), k))
    raise ValueError("one of rank, energy, params is required")


def saves_params(rank: int, shape: tuple[int, int]) -> bool:
    """True when A[out, r] + B[r, in] hold fewer parameters than W[out, in]."""
    out, inp = shape
    return rank * (out + inp) < out * inp


def relative_errors(w: np.ndarray, a: np.ndarray, b: np.ndarray,
                    gram: np.ndarray | None = None) -> dict[str, float]:
    """||W - A B||_F / ||W||_F, and with gram = X^T X the output error on the calibration
    inputs, sqrt(tr(E G E^T) / tr(W G W^T)) = ||(W - A B) X^T||_F / ||W X^T||_F."""
    w64 = np.asarray(w, np.float64)
    err = w64 - a.astype(np.float64) @ b.astype(np.float64)          # E[out, in]
    out = {"weight_error": _ratio(np.sum(err ** 2), np.sum(w64 ** 2))}
    if gram is not None:
        g = np.asarray(gram, np.float64)
        out["output_error"] = _ratio(np.sum((err @ g) * err), np.sum((w64 @ g) * w64))
    return out


def _ratio(num: float, den: float) -> float:
    """sqrt(num / den) of two squared norms; 0 when both vanish."""
    return float(np.sqrt(max(num, 0.0) / den)) if den > 0 else 0.0
