"""Registry of the pruning criteria (Table 1), in registry order.

Registry order breaks ties in the warm-up assignment (docs/method.md#warm-up). Adding a criterion is
one file here plus one registry line.
"""
from __future__ import annotations

from collections.abc import Iterable

from prunepeft.errors import choice_error
from prunepeft.pruning.criteria.activation import ActivationCriterion
from prunepeft.pruning.criteria.base import Criterion, CriterionContext
from prunepeft.pruning.criteria.gradient import GradientCriterion
from prunepeft.pruning.criteria.output_ratio import OutputRatioCriterion
from prunepeft.pruning.criteria.random import RandomCriterion
from prunepeft.pruning.criteria.taylor import TaylorCriterion
from prunepeft.pruning.criteria.threshold import ThresholdCriterion
from prunepeft.pruning.criteria.weight import WeightCriterion
from prunepeft.pruning.criteria.zeros import ZerosCriterion

CRITERIA: dict[str, Criterion] = {
    c.name: c
    for c in (
        WeightCriterion(),
        ZerosCriterion(),
        ThresholdCriterion(),
        ActivationCriterion(),
        TaylorCriterion(),
        GradientCriterion(),
        RandomCriterion(),
        OutputRatioCriterion(),
    )
}

# The six criteria of Table 1 that take part in a hybrid strategy by default (`random` never does;
# Light-PEFT's `output_ratio` only when named in `search.criteria`).
HYBRID_CRITERIA: tuple[str, ...] = tuple(n for n in CRITERIA if n not in ("random", "output_ratio"))


def get_criterion(name: str) -> Criterion:
    """The registered criterion `name`.

    Raises:
        UserError: unknown name (the message lists the valid choices).
    """
    try:
        return CRITERIA[name]
    except KeyError:
        raise choice_error("criterion", name, CRITERIA) from None


def registry_order(names: Iterable[str]) -> list[str]:
    """`names` validated and sorted in registry order (duplicates dropped)."""
    wanted = {get_criterion(n).name for n in names}
    return [n for n in CRITERIA if n in wanted]


def needs_of(names: Iterable[str]) -> set[str]:
    """Union of the statistics the named criteria need (what StatisticsCollector must gather)."""
    out: set[str] = {"weights"}
    for n in names:
        out |= set(get_criterion(n).needs)
    return out


__all__ = [
    "CRITERIA",
    "HYBRID_CRITERIA",
    "Criterion",
    "CriterionContext",
    "get_criterion",
    "needs_of",
    "registry_order",
]
