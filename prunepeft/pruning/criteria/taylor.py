"""`taylor` (Table 1): first-order Taylor saliency |w·∂L/∂w|, averaged over steps and elements."""
from __future__ import annotations

from prunepeft.pruning.criteria.base import (
    Criterion,
    CriterionContext,
    Scores,
    Stats,
    per_element_mean,
    require,
)


class TaylorCriterion(Criterion):
    """Mean over elements of (mean over optimizer steps of |w·g|); low saliency = prunable."""

    name = "taylor"
    needs = frozenset({"taylor"})
    higher_is_prunable = False

    def raw(self, stats: Stats, ctx: CriterionContext) -> Scores:
        return {
            uid: per_element_mean(require(s.taylor_abs, uid, "taylor", self.name))
            for uid, s in stats.items()
        }
