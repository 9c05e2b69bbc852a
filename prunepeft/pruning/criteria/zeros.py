"""`zeros` (Table 1): fraction of (near-)non-zero weights, |w| > ε.

ε is relative (ε = rel_tol × RMS of all active units' weights pooled) because trained dense
weights are never exactly zero: the literal ε = 0 scores every unit 1.0 (degenerate).

Orientation: a unit with many near-zero weights is the prunable one (the authors' code sorts
the zero ratio in descending order to pick what to prune), so the oriented score is the
near-zero fraction 1 − raw — the same ordering and Θ̃ as negating raw.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from prunepeft.errors import UserError
from prunepeft.pruning.criteria.base import (
    Criterion,
    CriterionContext,
    Scores,
    Stats,
    per_element_mean,
    pooled_abs_weights,
)


@dataclass(frozen=True)
class ZerosSettings:
    """`search.zeros.*`: this criterion's own settings (the config's defaults: `zeros.yaml` beside this file)."""

    rel_tol: float = 0.1  # ε = rel_tol × RMS of all active units' weights pooled (0: the literal ε = 0)

    def __post_init__(self) -> None:
        if not self.rel_tol >= 0:
            raise UserError(f"search.zeros.rel_tol must be >= 0, got {self.rel_tol!r}")


def zeros_epsilon(stats: Stats, rel_tol: float) -> float:
    """ε = rel_tol × RMS of every active unit's weights pooled."""
    pooled = pooled_abs_weights(stats)
    if pooled.size == 0:
        return 0.0
    return float(rel_tol * np.sqrt(np.mean(pooled**2)))


class ZerosCriterion(Criterion):
    """Fraction of |w| > ε per unit; oriented = 1 − that (the near-zero fraction)."""

    name = "zeros"
    needs = frozenset({"weights"})
    higher_is_prunable = True
    settings = ZerosSettings

    def raw(self, stats: Stats, ctx: CriterionContext) -> Scores:
        eps = zeros_epsilon(stats, ctx.settings_of(self).rel_tol)
        return {uid: per_element_mean((s.weights.abs() > eps).double()) for uid, s in stats.items()}

    def orient(self, raw: dict) -> Scores:
        return {uid: 1.0 - float(v) for uid, v in raw.items()}
