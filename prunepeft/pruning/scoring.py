"""Score one snapshot: for each criterion raw → oriented → Θ̃ (min-max) → ρ (percentile rank).

docs/method.md#scores-and-ranks: Θ̃ = min-max of the oriented scores over all active units, in [0, 1]; a
criterion whose oriented scores span ≤ 1e-8 is *degenerate* (Θ̃ = 0.5 and every unit tied in
ρ). ρ_i = rankdata(oriented, "average")_i / n, so 1 = the most prunable unit, ties averaged.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
from scipy.stats import rankdata

from prunepeft.pruning.criteria import get_criterion
from prunepeft.pruning.criteria.base import CriterionContext
from prunepeft.pruning.statistics import UnitId, UnitStatistics

DEGENERATE_RANGE = 1e-8


@dataclass
class CriterionScores:
    """One criterion's scores over the active units of one snapshot.

    Attributes:
        name: criterion name.
        raw: Table 1 value per unit.
        oriented: prunability (higher = more prunable).
        normalised: Θ̃ ∈ [0, 1] (min-max of `oriented`; 0.5 everywhere when degenerate).
        rank: ρ ∈ (0, 1], prunability percentile (1 = most prunable).
        degenerate: the oriented scores all tie (range ≤ 1e-8).
    """

    name: str
    raw: dict[UnitId, float]
    oriented: dict[UnitId, float]
    normalised: dict[UnitId, float]
    rank: dict[UnitId, float]
    degenerate: bool

    def to_json(self) -> dict[str, Any]:
        """JSON form with unit keys "layer:type" (for rounds.jsonl)."""
        from prunepeft.peft.units import unit_key

        def conv(d: Mapping[UnitId, float]) -> dict[str, float]:
            return {unit_key(u): float(v) for u, v in d.items()}

        return {
            "degenerate": self.degenerate,
            "raw": conv(self.raw),
            "oriented": conv(self.oriented),
            "normalised": conv(self.normalised),
            "rank": conv(self.rank),
        }


Snapshot = dict[str, CriterionScores]


def _check_finite(name: str, oriented: Mapping[UnitId, float]) -> None:
    bad = {u: v for u, v in oriented.items() if not math.isfinite(v)}
    if bad:
        raise ValueError(f"criterion {name!r} gave non-finite scores: {bad}")


def min_max(oriented: Mapping[UnitId, float]) -> tuple[dict[UnitId, float], bool]:
    """Θ̃ = (s − min) / (max − min) over the units; (all 0.5, True) when the range ≤ 1e-8."""
    if not oriented:
        return {}, True
    values = np.array(list(oriented.values()), dtype=np.float64)
    lo, hi = float(values.min()), float(values.max())
    if hi - lo <= DEGENERATE_RANGE:
        return {u: 0.5 for u in oriented}, True
    return {u: (float(v) - lo) / (hi - lo) for u, v in oriented.items()}, False


def percentile_ranks(oriented: Mapping[UnitId, float], degenerate: bool = False) -> dict[UnitId, float]:
    """ρ_i = rankdata(oriented, "average")_i / n (1 = most prunable).

    A degenerate criterion ranks every unit as tied ((n + 1) / 2n), so float noise below the
    1e-8 range cannot order units that Θ̃ already treats as equal.
    """
    uids = list(oriented)
    n = len(uids)
    if n == 0:
        return {}
    if degenerate:
        return {u: (n + 1) / (2.0 * n) for u in uids}
    ranks = rankdata(np.array([oriented[u] for u in uids], dtype=np.float64), method="average")
    return {u: float(r) / n for u, r in zip(uids, ranks)}


def scores_from_oriented(
    name: str, oriented: Mapping[UnitId, float], raw: Optional[Mapping[UnitId, float]] = None
) -> CriterionScores:
    """Build a CriterionScores from oriented scores (raw defaults to the oriented values)."""
    oriented = {u: float(v) for u, v in sorted(oriented.items())}
    _check_finite(name, oriented)
    theta, degenerate = min_max(oriented)
    return CriterionScores(
        name=name,
        raw={u: float(v) for u, v in sorted((raw if raw is not None else oriented).items())},
        oriented=oriented,
        normalised=theta,
        rank=percentile_ranks(oriented, degenerate),
        degenerate=degenerate,
    )


def remove_type_offset(oriented: Mapping[UnitId, float]) -> dict[UnitId, float]:
    """Standardise oriented scores within each unit type: (s − mean_type) / std_type.

    Per-element statistics such as activation, taylor and gradient differ in scale between a LoRA
    unit and an adapter before any data is seen, so a raw comparison mostly compares types. After
    this, a unit is judged by how it stands among the units of its own type (a type with one unit,
    or with no spread, scores 0). With one unit type in the search space the order is unchanged.
    """
    by_type: dict[str, list[UnitId]] = {}
    for uid in oriented:
        by_type.setdefault(uid[1], []).append(uid)
    out: dict[UnitId, float] = {}
    for uids in by_type.values():
        values = np.array([oriented[u] for u in uids], dtype=np.float64)
        std = float(values.std())
        for u, v in zip(uids, values):
            out[u] = 0.0 if std <= DEGENERATE_RANGE else float((v - values.mean()) / std)
    return out


def score_snapshot(
    stats: Mapping[UnitId, UnitStatistics], criteria: Sequence[str], ctx: CriterionContext
) -> Snapshot:
    """Score every criterion in `criteria` over the units of `stats` (the active units).

    Args:
        stats: collector snapshot, one entry per active unit.
        criteria: criterion names (validated; UserError on an unknown one).
        ctx: tolerances and seed.

    Returns:
        {criterion name: CriterionScores}, in the order of `criteria`; unit dicts sorted by uid.
    """
    out: Snapshot = {}
    for name in criteria:
        crit = get_criterion(name)
        raw = crit.raw(stats, ctx)
        oriented = crit.orient(raw)
        if ctx.type_norm == "zscore" and crit.name in ctx.type_norm_criteria:
            oriented = remove_type_offset(oriented)
        out[crit.name] = scores_from_oriented(crit.name, oriented, raw)
    return out


def snapshot_to_json(snapshot: Snapshot) -> dict[str, Any]:
    """{criterion: CriterionScores.to_json()} for rounds.jsonl."""
    return {name: s.to_json() for name, s in snapshot.items()}
