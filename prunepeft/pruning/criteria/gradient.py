"""`gradient` (Table 1): mean |∂L/∂w| over steps and elements; small gradients = prunable."""
from __future__ import annotations

from prunepeft.pruning.criteria.base import (
    Criterion,
    CriterionContext,
    Scores,
    Stats,
    per_element_mean,
    require,
)


class GradientCriterion(Criterion):
    """Mean over elements of (mean over optimizer steps of |g|), negated."""

    name = "gradient"
    needs = frozenset({"grad"})
    higher_is_prunable = False

    def raw(self, stats: Stats, ctx: CriterionContext) -> Scores:
        return {
            uid: per_element_mean(require(s.grad_abs, uid, "grad", self.name))
            for uid, s in stats.items()
        }
