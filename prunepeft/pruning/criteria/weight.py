"""`weight` (Table 1): mean squared weight; small weights = prunable, so it is negated."""
from __future__ import annotations

from prunepeft.pruning.criteria.base import Criterion, CriterionContext, Scores, Stats, per_element_mean


class WeightCriterion(Criterion):
    """1/|w| Σ w² over the unit's criterion parameters (DoRA magnitude excluded upstream)."""

    name = "weight"
    needs = frozenset({"weights"})
    higher_is_prunable = False

    def raw(self, stats: Stats, ctx: CriterionContext) -> Scores:
        # float64 before squaring: a diverging run's |w| ~ 1e20 must not overflow to inf in float32.
        return {uid: per_element_mean(s.weights.double().pow(2)) for uid, s in stats.items()}
