"""`threshold` (Table 1): fraction of weights with |w| < t; many small weights = prunable.

t is the `threshold.quantile` of all active |w| pooled (default the median, so the criterion
discriminates on dense trained weights), or an absolute `threshold.t`.
"""
from __future__ import annotations

import numpy as np

from prunepeft.pruning.criteria.base import (
    Criterion,
    CriterionContext,
    Scores,
    Stats,
    per_element_mean,
    pooled_abs_weights,
)


def threshold_t(stats: Stats, ctx: CriterionContext) -> float:
    """The absolute t, or the configured quantile of the pooled active |w|."""
    if ctx.threshold_t is not None:
        return float(ctx.threshold_t)
    pooled = pooled_abs_weights(stats)
    if pooled.size == 0:
        return 0.0
    # numpy, not torch.quantile: the latter refuses inputs above 2**24 elements.
    return float(np.quantile(pooled, ctx.threshold_quantile))


class ThresholdCriterion(Criterion):
    """Fraction of |w| < t per unit, kept as is (higher = more prunable)."""

    name = "threshold"
    needs = frozenset({"weights"})
    higher_is_prunable = True

    def raw(self, stats: Stats, ctx: CriterionContext) -> Scores:
        t = threshold_t(stats, ctx)
        return {uid: per_element_mean((s.weights.abs() < t).double()) for uid, s in stats.items()}
