"""Registry of the pruning criteria (Table 1), in registry order.

Registry order breaks ties in the warm-up assignment (docs/method.md#warm-up). Adding a criterion is
one file here (the class, and its `settings` dataclass when it has settings), plus, with settings,
one YAML beside it holding their defaults (`zeros.yaml`, composed into `search.zeros`), plus one
line in `BUILT_INS`; a criterion defined elsewhere (a plug-in, a test) is added with
`register_criterion`, comes after the built-ins, and its YAML is composed the same way.
"""
from __future__ import annotations

from collections.abc import Iterable

from prunepeft.config.extensions import add_settings_file, remove_settings_file, yaml_beside
from prunepeft.errors import choice_error
from prunepeft.pruning.criteria.activation import ActivationCriterion
from prunepeft.pruning.criteria.base import REGISTRY, Criterion, CriterionContext
from prunepeft.pruning.criteria.gradient import GradientCriterion
from prunepeft.pruning.criteria.masked_loss import MaskedLossCriterion
from prunepeft.pruning.criteria.output_ratio import OutputRatioCriterion
from prunepeft.pruning.criteria.random import RandomCriterion
from prunepeft.pruning.criteria.taylor import TaylorCriterion
from prunepeft.pruning.criteria.threshold import ThresholdCriterion
from prunepeft.pruning.criteria.weight import WeightCriterion
from prunepeft.pruning.criteria.zeros import ZerosCriterion

BUILT_INS: tuple[Criterion, ...] = (
    WeightCriterion(),
    ZerosCriterion(),
    ThresholdCriterion(),
    ActivationCriterion(),
    TaylorCriterion(),
    GradientCriterion(),
    RandomCriterion(),
    OutputRatioCriterion(),
    MaskedLossCriterion(),
)

# name -> criterion, in registry order (the built-ins above, then those registered later).
CRITERIA: dict[str, Criterion] = REGISTRY


def register_criterion(criterion: Criterion) -> Criterion:
    """Add `criterion` after those registered so far; its settings' YAML becomes `search.<name>`.

    Raises:
        ValueError: no name, or the name is taken.
    """
    if not criterion.name or criterion.name in CRITERIA:
        raise ValueError(f"cannot register criterion {criterion.name!r}: empty or already registered")
    path = yaml_beside(criterion.settings) if criterion.settings is not None else None
    if path is not None:
        add_settings_file("criterion", criterion.name, path)
    CRITERIA[criterion.name] = criterion
    return criterion


def unregister_criterion(name: str) -> None:
    """Remove a criterion added with `register_criterion` (the built-ins stay)."""
    if name in {c.name for c in BUILT_INS}:
        raise ValueError(f"criterion {name!r} is built in")
    CRITERIA.pop(name, None)
    remove_settings_file("criterion", name)


for _criterion in BUILT_INS:
    register_criterion(_criterion)

# The built-in criteria that take part in a hybrid strategy by default (`Criterion.in_default_hybrid`:
# Table 1's six; not `random`, Light-PEFT's `output_ratio` or the ground-truth `masked_loss`).
HYBRID_CRITERIA: tuple[str, ...] = tuple(n for n, c in CRITERIA.items() if c.in_default_hybrid)


def assignable(names: Iterable[str]) -> list[str]:
    """`names` without the null criteria (`Criterion.null`): those the warm-up may assign. A name not
    registered (a score table's own label, as in the by-hand tests) is not a null criterion."""
    return [n for n in names if not is_null(n)]


def is_null(name: str) -> bool:
    """Whether `name` is a registered null criterion (`Criterion.null`: `random`)."""
    return bool(getattr(CRITERIA.get(name), "null", False))


def null_criterion() -> Criterion:
    """The first registered null criterion (the diagnostics' null model; `random` built in)."""
    return next(c for c in CRITERIA.values() if c.null)


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
    "assignable",
    "CriterionContext",
    "get_criterion",
    "is_null",
    "needs_of",
    "null_criterion",
    "register_criterion",
    "registry_order",
    "unregister_criterion",
]
