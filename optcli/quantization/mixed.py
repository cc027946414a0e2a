"""Mixed precision, `bits: auto`: per-layer bit widths meeting a size target at the least
summed sensitivity (in the spirit of HAWQ-V3's budgeted assignment, Yao et al. ICML 2021,
with the measured error instead of a Hessian trace).

The sensitivity of layer l at b bits is the error it alone adds on calibration data,
e_l(b) = tr(dW H dW^T) / tr(W H W^T) under round to nearest (error.py; sensitivity.py measures
it). Sizes are the exact stored bytes of each choice (grid.stored_nbytes, scales and zero points
included). Greedy descent: every layer starts at the widest candidate; while the total is
above the budget, the layer whose next narrower width costs the least added error per byte
saved steps down. A target below the all-narrowest size is an error.

    steps:
      - quantize: {bits: auto, target_bits: 4.5, granularity: group, group_size: 128}
"""

from __future__ import annotations

CANDIDATES = (2, 3, 4, 5, 6, 8)


def assign_bits(errors: list[dict[int, float]], sizes: list[dict[int, int]],
                budget: int) -> list[int]:
    """Per layer the chosen width (a key of its errors/sizes dicts) with sum of sizes <=
    budget; ValueError if even the narrowest widths do not fit."""
    widths = [sorted(e) for e in errors]                      # ascending candidates per layer
    least = sum(s[w[0]] for s, w in zip(sizes, widths))
    if least > budget:
        raise ValueError(f"the target ({budget} bytes) is below the smallest reachable size "
                         f"({least} bytes, every layer at {min(min(w) for w in widths)} bits)")
    pos = [len(w) - 1 for w in widths]                        # index into widths, widest first
    total = sum(s[w[-1]] for s, w in zip(sizes, widths))
    while total > budget:
        best, best_cost = -1, float("inf")
        for i, (e, s, w) in enumerate(zip(errors, sizes, widths)):
            if pos[i] == 0:
                continue
            hi, lo = w[pos[i]], w[pos[i] - 1]
            cost = (e[lo] - e[hi]) / max(s[hi] - s[lo], 1)    # added error per byte saved
            if cost < best_cost:
                best, best_cost = i, cost
        hi, lo = widths[best][pos[best]], widths[best][pos[best] - 1]
        total -= sizes[best][hi] - sizes[best][lo]
        pos[best] -= 1
    return [w[p] for w, p in zip(widths, pos)]
