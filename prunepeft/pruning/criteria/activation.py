"""`activation` (Table 1): mean |Δ| of the unit's branch output; a quiet branch is prunable."""
from __future__ import annotations

from prunepeft.pruning.criteria.base import Criterion, CriterionContext, Scores, Stats, require


class ActivationCriterion(Criterion):
    """Mean |Δ| over the round's non-pad training tokens and features, averaged over sites."""

    name = "activation"
    needs = frozenset({"activation"})
    higher_is_prunable = False

    def raw(self, stats: Stats, ctx: CriterionContext) -> Scores:
        return {uid: float(require(s.activation, uid, "activation", self.name)) for uid, s in stats.items()}
