"""The Criterion base class and the context (tolerances, seed) every criterion may read.

Table 1 of the paper defines each criterion as a per-element mean over a unit's parameters
(1/|w| Σ ...). Here `raw` returns that value per unit and `oriented` turns it into a
*prunability* score: higher = more prunable. Importance-like statistics (weight, activation,
taylor, gradient) are negated; fraction-of-small-weights statistics are kept as they are.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import torch

from prunepeft.errors import UserError
from prunepeft.pruning.statistics import UnitId, UnitStatistics

Stats = Mapping[UnitId, UnitStatistics]
# How the per-type offset of a criterion is removed (docs/method.md, "Types are compared fairly").
TYPE_NORMS = ("none", "zscore")
Scores = dict[UnitId, float]


@dataclass(frozen=True)
class CriterionContext:
    """Knobs shared by the criteria of one scoring call.

    Attributes:
        zeros_rel_tol: `zeros` counts |w| > ε with ε = zeros_rel_tol × RMS of all active units'
            weights pooled (0 gives the literal ε = 0).
        threshold_quantile: `threshold` uses t = this quantile of all active |w| pooled.
        threshold_t: an absolute t for `threshold` (overrides the quantile when set).
        seed: drives the `random` criterion (the search passes seed + round).
        type_norm: `none`, or `zscore`: standardise the oriented scores within each unit type
            (see `scoring.remove_type_offset`) for the criteria in `type_norm_criteria`.
        type_norm_criteria: the criteria `type_norm` applies to.
    """

    zeros_rel_tol: float = 0.1
    threshold_quantile: float = 0.5
    threshold_t: Optional[float] = None
    seed: int = 0
    type_norm: str = "none"
    type_norm_criteria: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.zeros_rel_tol >= 0:
            raise UserError(f"search.zeros.rel_tol must be >= 0, got {self.zeros_rel_tol!r}")
        if not 0.0 <= self.threshold_quantile <= 1.0:
            raise UserError(
                f"search.threshold.quantile must be in [0, 1], got {self.threshold_quantile!r}"
            )
        if self.threshold_t is not None and not self.threshold_t >= 0:
            raise UserError(f"search.threshold.t must be >= 0 or null, got {self.threshold_t!r}")
        if self.type_norm not in TYPE_NORMS:
            raise UserError(f"search.type_norm={self.type_norm!r} is not valid; choose from: {', '.join(TYPE_NORMS)}")

    @classmethod
    def from_search_config(cls, search: Any, seed: int) -> "CriterionContext":
        """Build from the `search` config group (SearchConfig / DictConfig) and a seed."""
        t = search.threshold.t
        return cls(
            zeros_rel_tol=float(search.zeros.rel_tol),
            threshold_quantile=float(search.threshold.quantile),
            threshold_t=None if t is None else float(t),
            seed=int(seed),
            type_norm=str(search.type_norm),
            type_norm_criteria=tuple(str(c) for c in search.type_norm_criteria),
        )


class Criterion:
    """One pruning criterion of Table 1.

    Subclasses set `name`, `needs` (a subset of {"weights", "grad", "taylor", "activation"})
    and `higher_is_prunable`, and implement `raw`.
    """

    name: str = ""
    needs: frozenset[str] = frozenset()
    # False: a larger raw value means a more important unit, so `oriented` negates it.
    higher_is_prunable: bool = False

    def raw(self, stats: Stats, ctx: CriterionContext) -> Scores:
        """The criterion's value per unit, as Table 1 defines it."""
        raise NotImplementedError

    def orient(self, raw: Mapping[UnitId, float]) -> Scores:
        """Map raw values to prunability scores (higher = more prunable)."""
        if self.higher_is_prunable:
            return {uid: float(v) for uid, v in raw.items()}
        return {uid: -float(v) for uid, v in raw.items()}

    def oriented(self, stats: Stats, ctx: CriterionContext) -> Scores:
        """`raw` then `orient`: higher = more prunable."""
        return self.orient(self.raw(stats, ctx))

    def __repr__(self) -> str:
        return f"<criterion {self.name}>"


def require(stat: Optional[Any], uid: UnitId, what: str, criterion: str) -> Any:
    """Return `stat`, or fail loudly when the collector was not asked for it."""
    if stat is None:
        raise ValueError(
            f"criterion {criterion!r} needs the {what!r} statistic of unit {uid}, which was not "
            f"collected (build the StatisticsCollector with needs including {what!r})"
        )
    return stat


def per_element_mean(t: torch.Tensor) -> float:
    """Table 1's 1/|w| Σ over a unit's elements (float64 accumulation for determinism)."""
    return float(t.detach().double().mean())


def pooled_abs_weights(stats: Stats) -> np.ndarray:
    """|w| of every active unit's criterion parameters, pooled (float64)."""
    if not stats:
        return np.zeros(0)
    return np.concatenate([s.weights.detach().double().abs().numpy().ravel() for s in stats.values()])
