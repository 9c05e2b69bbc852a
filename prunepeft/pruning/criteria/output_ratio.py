"""`output_ratio` (Light-PEFT, Gu et al. 2024): ||Δ(x)|| / ||base(x)|| per token; a quiet unit is prunable.

Per site, the mean over non-pad tokens of the ratio of the branch output's norm to the norm of
the output it is added to (parallel units: the frozen Linear's output h; serial units: their input),
averaged over the second half of the round's training forwards, then over the unit's sites.
Scale-free, unlike `activation`. Not one of Table 1's six: name it in `search.criteria` (hybrid,
warm-up) or `strategy.criterion=output_ratio` (single). At the standard init (LoRA B = 0, adapter
up = 0) every Δ is 0, so it is flagged degenerate there.
"""
from __future__ import annotations

from prunepeft.pruning.criteria.base import Criterion, CriterionContext, Scores, Stats, require


class OutputRatioCriterion(Criterion):
    """Mean ||Δ_t|| / ||base_t|| over the round's non-pad training tokens (second half), over sites."""

    name = "output_ratio"
    needs = frozenset({"output_ratio"})
    in_default_hybrid = False  # Light-PEFT's: only when named in search.criteria
    higher_is_prunable = False

    def raw(self, stats: Stats, ctx: CriterionContext) -> Scores:
        return {uid: float(require(s.output_ratio, uid, "output_ratio", self.name)) for uid, s in stats.items()}
