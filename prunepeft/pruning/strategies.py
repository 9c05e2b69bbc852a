"""The search strategies of Table 5: which criteria score a round and how they are combined.

- `hybrid` (PrunePEFT): every partition key has its own criterion S_H found by the warm-up
  (`search.warmup.assign`: tendency | agreement | consensus, `assign_rules.py`); Eq. (1) combines
  (`strategy.combine=paper`, the default), or `reference` (the authors' later code), `rank` (ρ
  under S_i alone) or `zscore` (robust z-score under S_i): `combine.COMBINATIONS`.
- `single`: one criterion (`strategy.criterion`) for every unit, Eq. (1).
- `random`: the seeded `random` criterion for every unit, Eq. (1).
- `hybrid_no_partition`: mean over the criteria of k·Θ̃ (the authors' "mixed").
- `none`: no pruning; the supernet is retrained as is.
- `random_matched`: no rounds; per unit type as many units as the hybrid's found configuration
  (`strategy.from_run`), drawn at random (`matched.py`), then retrained.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from prunepeft.errors import UserError, check_choice
from prunepeft.pruning.assign_rules import ASSIGN_RULES
from prunepeft.pruning.combine import COMBINATIONS, Combined, combine_no_partition
from prunepeft.pruning.criteria import CRITERIA, assignable, get_criterion, null_criterion, registry_order
from prunepeft.pruning.partitions import Partition, PartitionKey
from prunepeft.pruning.scoring import Snapshot
from prunepeft.pruning.statistics import UnitId
from prunepeft.pruning.warmup import constant_assignment, unit_assignment

@dataclass(frozen=True)
class StrategyKind:
    """What a strategy of Table 5 is, as properties (no strategy is special-cased by name).

    Attributes:
        criteria: which criteria score a round: "assignable" (`search.criteria` less the null ones),
            "one" (`strategy.criterion`), "null" (the null criterion, `random`) or "none".
        per_unit: how a unit's criteria are chosen: "assignment" (S_H, by partition key), "all"
            (every criterion, no partition) or "single" (the one criterion).
        needs_warmup: the warm-up runs to find S_H (or S_H is transferred: `strategy.from_run`).
        prunes: the search prunes in rounds (`random_matched` draws its units in one shot: matched.py).
        matched: draws, per unit type, as many units as `strategy.from_run`'s found configuration.
    """

    criteria: str = "none"
    per_unit: str = "single"
    needs_warmup: bool = False
    prunes: bool = True
    matched: bool = False


STRATEGY_KINDS: dict[str, StrategyKind] = {
    "hybrid": StrategyKind("assignable", "assignment", needs_warmup=True),
    "single": StrategyKind("one"),
    "random": StrategyKind("null"),
    "hybrid_no_partition": StrategyKind("assignable", "all"),
    "none": StrategyKind(prunes=False),
    "random_matched": StrategyKind(prunes=False, matched=True),
}
STRATEGIES = tuple(STRATEGY_KINDS)
COMBINE_MODES = tuple(COMBINATIONS)  # paper (Eq. 1, default) | reference | rank | zscore


@dataclass(frozen=True)
class Strategy:
    """A validated strategy config.

    Attributes:
        name: one of STRATEGIES.
        criteria: the criteria scored each round (registry order).
        combine: one of COMBINE_MODES: "paper" (Eq. (1)), "reference" (the authors' later code,
            not the paper's), "rank" or "zscore" (docs/method.md#eq-1).
        single: the criterion of a strategy scoring one criterion (`single`, `random`), else None.
        assign: the warm-up's assignment rule (`search.warmup.assign`, hybrid only).
    """

    name: str
    criteria: tuple[str, ...]
    combine: str = "paper"
    single: str | None = None
    assign: str = "tendency"

    @property
    def kind(self) -> StrategyKind:
        return STRATEGY_KINDS[self.name]

    @property
    def needs_warmup(self) -> bool:
        """Whether the strategy needs the warm-up's assignment S_H (hybrid)."""
        return self.kind.needs_warmup

    @property
    def prunes(self) -> bool:
        """Whether the search prunes in rounds (`random_matched` draws its units in one shot: matched.py)."""
        return self.kind.prunes


def make_strategy(name: str, criterion: str | None, criteria: Sequence[str], combine: str,
                  assign: str = "tendency") -> Strategy:
    """Validate the strategy keys of the config (UserError naming the bad value and the choices)."""
    check_choice("strategy", name, STRATEGIES)
    check_choice("strategy.combine", combine, COMBINE_MODES)
    check_choice("search.warmup.assign", assign, ASSIGN_RULES)
    kind = STRATEGY_KINDS[name]
    if kind.criteria == "assignable":
        hybrid_criteria = tuple(assignable(registry_order(criteria)))
        if not hybrid_criteria:
            raise UserError(f"strategy {name!r} needs at least one criterion that is not null (random) in search.criteria")
        return Strategy(name, hybrid_criteria, combine, assign=assign)
    if kind.criteria == "one":
        if criterion is None:
            raise UserError(f"strategy={name} needs strategy.criterion=<one of {', '.join(CRITERIA)}>")
        single = get_criterion(criterion).name
        return Strategy(name, (single,), combine, single)
    if kind.criteria == "null":
        null = null_criterion().name
        return Strategy(name, (null,), combine, null)
    return Strategy(name, (), combine)


def strategy_of(s: Any) -> Strategy:
    """The Strategy of a search's typed settings (`config.typed.SearchSettings`, built from a validated config)."""
    return make_strategy(s.strategy.name, s.strategy.criterion, list(s.criteria), s.strategy.combine, s.warmup.assign)


def combine_round(
    strategy: Strategy,
    snapshot: Snapshot,
    partition: Partition,
    assignment: Mapping[PartitionKey, str] | None,
    k: int,
) -> Combined:
    """The pruning distribution p over the active units for one round.

    Args:
        strategy: the validated strategy.
        snapshot: `score_snapshot` of this round (scored on `strategy.criteria`).
        partition: the model's fixed partition (docs/method.md#partitions).
        assignment: S_H (hybrid only).
        k: units removed per round (used by the reference combination).
    """
    units = sorted(snapshot[strategy.criteria[0]].oriented)
    combination = COMBINATIONS[strategy.combine]
    if strategy.kind.per_unit == "all":
        if strategy.combine == "paper":  # the authors' "mixed": mean over criteria of k·Θ̃
            return combine_no_partition(snapshot, strategy.criteria)
        return combination(snapshot, {u: list(strategy.criteria) for u in units}, k)
    if strategy.kind.per_unit == "assignment":
        if assignment is None:
            raise ValueError("the hybrid strategy needs the warm-up assignment S_H")
        per_unit: dict[UnitId, str] = unit_assignment(units, partition, assignment)
    else:
        per_unit = constant_assignment(units, strategy.single)
    return combination(snapshot, {u: [c] for u, c in per_unit.items()}, k)
