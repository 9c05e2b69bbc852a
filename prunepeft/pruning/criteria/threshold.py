"""`threshold` (Table 1): fraction of weights with |w| < t; many small weights = prunable.

t is the `threshold.quantile` of all active |w| pooled (default the median, so the criterion
discriminates on dense trained weights), or an absolute `threshold.t`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

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
class ThresholdSettings:
    """`search.threshold.*`: this criterion's own settings (the config's defaults: `threshold.yaml` beside this file)."""

    quantile: float = 0.5  # t = this quantile of all active |w| pooled
    t: Optional[float] = None  # an absolute t (overrides the quantile when set)

    def __post_init__(self) -> None:
        # Checked for type too: `t` defaults to null in threshold.yaml, so the schema cannot type it.
        if not _number(self.quantile) or not 0.0 <= self.quantile <= 1.0:
            raise UserError(f"search.threshold.quantile must be in [0, 1], got {self.quantile!r}")
        if self.t is not None and (not _number(self.t) or not self.t >= 0):
            raise UserError(f"search.threshold.t must be >= 0 or null, got {self.t!r}")


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def threshold_t(stats: Stats, settings: ThresholdSettings) -> float:
    """The absolute t, or the configured quantile of the pooled active |w|."""
    if settings.t is not None:
        return float(settings.t)
    pooled = pooled_abs_weights(stats)
    if pooled.size == 0:
        return 0.0
    # numpy, not torch.quantile: the latter refuses inputs above 2**24 elements.
    return float(np.quantile(pooled, settings.quantile))


class ThresholdCriterion(Criterion):
    """Fraction of |w| < t per unit, kept as is (higher = more prunable)."""

    name = "threshold"
    needs = frozenset({"weights"})
    higher_is_prunable = True
    settings = ThresholdSettings

    def raw(self, stats: Stats, ctx: CriterionContext) -> Scores:
        t = threshold_t(stats, ctx.settings_of(self))
        return {uid: per_element_mean((s.weights.abs() < t).double()) for uid, s in stats.items()}
