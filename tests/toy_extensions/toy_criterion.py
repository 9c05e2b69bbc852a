"""A toy criterion with one setting: `scale` × the mean squared weight (importance-like)."""
from __future__ import annotations

from dataclasses import dataclass

from prunepeft.errors import UserError
from prunepeft.pruning.criteria.base import Criterion, CriterionContext, Scores, Stats, per_element_mean


@dataclass(frozen=True)
class ToySettings:
    """`search.toy_scaled.scale` (default in toy_criterion.yaml beside this file)."""

    scale: float = 1.0

    def __post_init__(self) -> None:
        if not self.scale > 0:
            raise UserError(f"search.toy_scaled.scale must be > 0, got {self.scale!r}")


class ToyScaledCriterion(Criterion):
    name = "toy_scaled"
    needs = frozenset({"weights"})
    higher_is_prunable = False
    settings = ToySettings

    def raw(self, stats: Stats, ctx: CriterionContext) -> Scores:
        scale = float(ctx.settings_of(self).scale)
        return {uid: scale * per_element_mean(s.weights.double().pow(2)) for uid, s in stats.items()}
