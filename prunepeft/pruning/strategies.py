"""The search strategies of Table 5: which criteria score a round and how they are combined.

- `hybrid` (PrunePEFT): every partition key has its own criterion S_H found by the warm-up;
  Eq. (1) combines (or the authors' `reference` variant when `strategy.combine=reference`).
- `single`: one criterion (`strategy.criterion`) for every unit, Eq. (1).
- `random`: the seeded `random` criterion for every unit, Eq. (1).
- `hybrid_no_partition`: mean over the criteria of k·Θ̃ (the authors' "mixed").
- `none`: no pruning; the supernet is retrained as is.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from prunepeft.errors import UserError, check_choice
from prunepeft.pruning.combine import Combined, combine_no_partition, combine_paper, combine_reference
from prunepeft.pruning.criteria import CRITERIA, get_criterion, registry_order
from prunepeft.pruning.partitions import Partition, PartitionKey
from prunepeft.pruning.scoring import Snapshot
from prunepeft.pruning.statistics import UnitId
from prunepeft.pruning.warmup import constant_assignment, unit_assignment

STRATEGIES = ("hybrid", "single", "random", "hybrid_no_partition", "none")
COMBINE_MODES = ("paper", "reference")


@dataclass(frozen=True)
class Strategy:
    """A validated strategy config.

    Attributes:
        name: one of STRATEGIES.
        criteria: the criteria scored each round (registry order).
        combine: "paper" (Eq. (1)) or "reference" (the authors' later code, not the paper's).
        single: the criterion of `single` / `random`, else None.
    """

    name: str
    criteria: tuple[str, ...]
    combine: str = "paper"
    single: str | None = None

    @property
    def needs_warmup(self) -> bool:
        """Only the hybrid strategy needs the warm-up's assignment S_H."""
        return self.name == "hybrid"

    @property
    def prunes(self) -> bool:
        return self.name != "none"


def make_strategy(name: str, criterion: str | None, criteria: Sequence[str], combine: str) -> Strategy:
    """Validate the strategy keys of the config (UserError naming the bad value and the choices)."""
    check_choice("strategy", name, STRATEGIES)
    check_choice("strategy.combine", combine, COMBINE_MODES)
    hybrid_criteria = tuple(registry_order(c for c in criteria if get_criterion(c).name != "random"))
    if name in ("hybrid", "hybrid_no_partition"):
        if not hybrid_criteria:
            raise UserError(f"strategy {name!r} needs at least one non-random criterion in search.criteria")
        return Strategy(name, hybrid_criteria, combine)
    if name == "single":
        if criterion is None:
            raise UserError(f"strategy=single needs strategy.criterion=<one of {', '.join(CRITERIA)}>")
        single = get_criterion(criterion).name
        return Strategy(name, (single,), combine, single)
    if name == "random":
        return Strategy(name, ("random",), combine, "random")
    return Strategy(name, (), combine)


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
    if strategy.name == "hybrid_no_partition":
        if strategy.combine == "reference":
            return combine_reference(snapshot, {u: list(strategy.criteria) for u in units}, k)
        return combine_no_partition(snapshot, strategy.criteria)
    if strategy.name == "hybrid":
        if assignment is None:
            raise ValueError("the hybrid strategy needs the warm-up assignment S_H")
        per_unit: dict[UnitId, str] = unit_assignment(units, partition, assignment)
    else:
        per_unit = constant_assignment(units, strategy.single or "random")
    if strategy.combine == "reference":
        return combine_reference(snapshot, {u: [c] for u, c in per_unit.items()}, k)
    return combine_paper(snapshot, per_unit)
