"""Which units to remove, given the pruning distribution p (Algorithm 1; docs/method.md#rounds).

Units are removed in descending p; exact ties are broken by a permutation drawn from the seed,
so the order is deterministic for a seed and does not depend on dict order.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from prunepeft.pruning.statistics import UnitId


def removal_order(p: Mapping[UnitId, float], seed: int) -> list[UnitId]:
    """All units in descending p, exact ties ordered by a seeded permutation."""
    uids = sorted(p)
    tie = np.random.default_rng(int(seed) % 2**63).permutation(len(uids))
    order = sorted(range(len(uids)), key=lambda i: (-float(p[uids[i]]), int(tie[i])))
    return [uids[i] for i in order]


def select_top_k(p: Mapping[UnitId, float], k: int, seed: int) -> list[UnitId]:
    """The k units with the highest p (all of them when k ≥ n), in removal order.

    Raises:
        ValueError: k < 0.
    """
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    return removal_order(p, seed)[:k]


def select_for_budget(
    p: Mapping[UnitId, float],
    param_counts: Mapping[UnitId, int],
    active_total: int,
    budget: int,
    seed: int,
) -> list[UnitId]:
    """The shortest prefix of the removal order that brings the active PEFT total to ≤ budget.

    Never skips a higher-p unit to land closer to the budget (docs/method.md#rounds): the result is
    always a prefix of `removal_order(p, seed)`. Returns [] when already within the budget.

    Args:
        p: pruning score per active unit.
        param_counts: trainable parameters of each active unit (every tensor, Section 7).
        active_total: current active PEFT parameter total (≥ Σ param_counts of p's units
            only if something outside p is counted too; normally equal).
        budget: B in parameters.
        seed: tie-break seed.
    """
    if budget < 0:
        raise ValueError(f"budget must be >= 0, got {budget}")
    missing = [u for u in p if u not in param_counts]
    if missing:
        raise ValueError(f"no parameter count for units {missing}")
    removed: list[UnitId] = []
    total = int(active_total)
    for uid in removal_order(p, seed):
        if total <= budget:
            break
        removed.append(uid)
        total -= int(param_counts[uid])
    return removed


def select_round(
    p: Mapping[UnitId, float],
    k: int,
    param_counts: Mapping[UnitId, int],
    active_total: int,
    budget: int,
    seed: int,
) -> tuple[list[UnitId], bool]:
    """One round's removal: the top-k, or the budget prefix when that reaches ≤ budget.

    Returns:
        (removed units in removal order, last) where `last` means the active total is now
        ≤ budget. If removing the top-k would still leave the total above the budget, the top-k
        are removed and the search continues; otherwise the shortest budget prefix (≤ k units)
        is removed and this is the last round.
    """
    top = select_top_k(p, k, seed)
    after = int(active_total) - sum(int(param_counts[u]) for u in top)
    if after > budget:
        return top, False
    return select_for_budget(p, param_counts, active_total, budget, seed), True
