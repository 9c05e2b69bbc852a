"""Rank statistics shared by the diagnostics instrument and the rule grid (docs/method.md#diagnostics)."""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Optional

import numpy as np
from scipy.stats import spearmanr

from prunepeft.pruning.statistics import UnitId


def spearman(x: Sequence[float], y: Sequence[float]) -> Optional[float]:
    """Spearman's ρ, or None when it is undefined (fewer than 3 units, or a constant input)."""
    if len(x) < 3 or np.ptp(np.asarray(x, dtype=float)) == 0 or np.ptp(np.asarray(y, dtype=float)) == 0:
        return None
    value = float(spearmanr(x, y).statistic)
    return None if math.isnan(value) else value


def prunability_correlation(prunability: Mapping[UnitId, float], importance: Mapping[UnitId, float]) -> Optional[float]:
    """Spearman between a prunability score (higher = prune first) and −importance."""
    uids = sorted(importance)
    return spearman([prunability[u] for u in uids], [-importance[u] for u in uids])


def decision_percentile(removed_rise: float, random_rises: Sequence[float]) -> float:
    """Share of random removal sets that hurt LESS than the decision (ties count half), in [0, 1]."""
    r = np.asarray(random_rises, dtype=float)
    return float(((r < removed_rise).sum() + 0.5 * (r == removed_rise).sum()) / max(1, len(r)))




def random_sets_like(removed: Sequence[UnitId], active: Sequence[UnitId], count: int,
                     rng: np.random.Generator) -> list[list[UnitId]]:
    """`count` random subsets of `active` with as many units of each type as `removed`."""
    want: dict[str, int] = {}
    for _, t in removed:
        want[t] = want.get(t, 0) + 1
    by_type = {t: [u for u in active if u[1] == t] for t in want}
    out = []
    for _ in range(count):
        pick: list[UnitId] = []
        for t, n in sorted(want.items()):
            idx = rng.choice(len(by_type[t]), size=n, replace=False)
            pick += [by_type[t][i] for i in sorted(idx)]
        out.append(pick)
    return out
