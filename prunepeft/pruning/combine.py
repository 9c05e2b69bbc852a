"""Combine per-criterion scores into one pruning distribution p over the active units.

- `combine_paper`: Eq. (1) of the paper. Unit i is judged by its partition's criterion S_i:
  ρ_i = its prunability percentile under S_i among all active units, k_i = sigmoid(ρ_i),
  p_i = softmax_i(k_i·Θ̃_i) with Θ̃_i its min-max normalised score under S_i.
- `combine_no_partition`: the `hybrid_no_partition` ablation (Table 5; the authors' "mixed"):
  each unit scored by the mean over the criteria c of sigmoid(ρ_c)·Θ̃_c, then softmax.
- `combine_reference`: the authors' LATER code (NOT the paper's Eq. (1)); see its docstring.
- `combine_rank`: ρ under S_i alone (one percentile scale for every criterion; issue 15).
- `combine_zscore`: (s − median) / MAD of S_i's oriented scores over all active units (issue 15).

`COMBINATIONS` is the registry behind `strategy.combine` (paper | reference | rank | zscore): each
entry takes (snapshot, {unit: [criteria judging it]}, k) and returns a `Combined`. The rule grid
(`rule_grid.py`) scores with the same functions.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from prunepeft.pruning.scoring import Snapshot
from prunepeft.pruning.statistics import UnitId


def sigmoid(x: float) -> float:
    """1 / (1 + e^-x), without overflow: e^-x overflows a float for x < -709 (the reference combination
    takes x = (k - 1) - rank, so a unit ranked 710 places past k would raise), hence e^x / (1 + e^x) there."""
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)


def softmax(logits: Mapping[UnitId, float]) -> dict[UnitId, float]:
    """Numerically stable softmax over the units (float64)."""
    if not logits:
        return {}
    uids = list(logits)
    z = np.array([logits[u] for u in uids], dtype=np.float64)
    e = np.exp(z - z.max())
    e /= e.sum()
    return {u: float(v) for u, v in zip(uids, e)}


@dataclass
class Combined:
    """Result of one combination.

    Attributes:
        method: "paper", "no_partition", "reference", "rank" or "zscore".
        p: pruning score per unit (sums to 1); units are removed in descending p.
        logit: the pre-normalisation score (k_i·Θ̃_i for Eq. (1)).
        criteria: the criteria each unit was judged by (S_i for Eq. (1)).
        k: k_i = sigmoid(ρ_i) (Eq. (1) only, else empty).
        rho: ρ_i under S_i (Eq. (1) only, else empty).
        theta: Θ̃_i under S_i (Eq. (1) only, else empty).
    """

    method: str
    p: dict[UnitId, float]
    logit: dict[UnitId, float]
    criteria: dict[UnitId, list[str]]
    k: dict[UnitId, float]
    rho: dict[UnitId, float]
    theta: dict[UnitId, float]

    def to_json(self) -> dict[str, Any]:
        """JSON form with unit keys "layer:type" (for rounds.jsonl)."""
        from prunepeft.peft.units import unit_key

        def conv(d: Mapping[UnitId, Any]) -> dict[str, Any]:
            return {unit_key(u): v for u, v in d.items()}

        return {
            "method": self.method,
            "p": conv(self.p),
            "logit": conv(self.logit),
            "criteria": conv(self.criteria),
            "k": conv(self.k),
            "rho": conv(self.rho),
            "theta": conv(self.theta),
        }


def _units(snapshot: Snapshot, names: Sequence[str]) -> list[UnitId]:
    missing = [n for n in names if n not in snapshot]
    if missing:
        raise ValueError(f"criteria {missing} were not scored in this snapshot ({list(snapshot)})")
    return sorted(snapshot[names[0]].oriented) if names else []


def combine_paper(snapshot: Snapshot, assignment: Mapping[UnitId, str]) -> Combined:
    """Eq. (1): p_i = softmax_i(sigmoid(ρ_i)·Θ̃_i), each unit judged by its criterion S_i.

    Args:
        snapshot: scores of the active units (`scoring.score_snapshot`).
        assignment: S_i per active unit (hybrid: its partition key's criterion; `single` /
            `random`: the same criterion for every unit).

    Returns:
        Combined with p, logit = k·Θ̃, k, rho, theta and criteria = [S_i].
    """
    names = sorted(set(assignment.values()))
    units = _units(snapshot, names)
    if sorted(assignment) != units:
        raise ValueError("the assignment must cover exactly the scored (active) units")
    rho = {u: snapshot[assignment[u]].rank[u] for u in units}
    theta = {u: snapshot[assignment[u]].normalised[u] for u in units}
    k = {u: sigmoid(rho[u]) for u in units}
    logit = {u: k[u] * theta[u] for u in units}
    return Combined("paper", softmax(logit), logit, {u: [assignment[u]] for u in units}, k, rho, theta)


def combine_no_partition(snapshot: Snapshot, criteria: Sequence[str]) -> Combined:
    """`hybrid_no_partition`: p = softmax of mean_c sigmoid(ρ_c)·Θ̃_c over `criteria`.

    A degenerate criterion adds the same constant to every unit, which the softmax ignores.
    """
    criteria = list(criteria)
    if not criteria:
        raise ValueError("combine_no_partition needs at least one criterion")
    units = _units(snapshot, criteria)
    logit = {
        u: sum(sigmoid(snapshot[c].rank[u]) * snapshot[c].normalised[u] for c in criteria) / len(criteria)
        for u in units
    }
    return Combined("no_partition", softmax(logit), logit, {u: list(criteria) for u in units}, {}, {}, {})


def combine_reference(
    snapshot: Snapshot, unit_criteria: Mapping[UnitId, Sequence[str]], k: int
) -> Combined:
    """The authors' later combination — NOT the paper's Eq. (1); a named option only.

    score_i = Σ_{c ∈ C_i} 5·sigmoid((k − 1) − r_c(i))·softmax_c(i), where
      - C_i: the criteria unit i is judged by (hybrid: [S_i]; no partition: all of them);
      - r_c(i) = n·(1 − ρ_c(i)): unit i's 0-based rank under c among the n active units,
        0 = the most prunable (ties share the average rank);
      - softmax_c(i) = exp(Θ̃_c(i)) / Σ_j exp(Θ̃_c(j)) over all active units j;
      - k: units removed per round; the sigmoid weight ≈ 5 inside c's top-k and decays to 0
        beyond it (the authors' code hard-codes 5 / (1 + e^(rank − 3)), i.e. k = 4).
    Our reading of that code: it ranked and normalised raw values (prunable-high for some
    criteria only) and within each block; here r_c and softmax_c use the oriented scores
    (Θ̃) over all active units, so every criterion pulls in the prunable direction.
    p_i = score_i / Σ_j score_j (order-preserving; only the order drives removal).
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    names = sorted({c for cs in unit_criteria.values() for c in cs})
    units = _units(snapshot, names)
    if sorted(unit_criteria) != units:
        raise ValueError("unit_criteria must cover exactly the scored (active) units")
    n = len(units)
    soft = {c: softmax(snapshot[c].normalised) for c in names}

    def term(c: str, u: UnitId) -> float:
        r = n * (1.0 - snapshot[c].rank[u])  # 0-based rank, 0 = most prunable
        return 5.0 * sigmoid((k - 1) - r) * soft[c][u]

    logit = {u: sum(term(c, u) for c in unit_criteria[u]) for u in units}
    total = sum(logit.values())
    p = {u: (v / total if total > 0 else 1.0 / n) for u, v in logit.items()}
    return Combined("reference", p, logit, {u: list(unit_criteria[u]) for u in units}, {}, {}, {})


def rank_scores(snapshot: Snapshot, unit_criteria: Mapping[UnitId, Sequence[str]]) -> dict[UnitId, float]:
    """Per unit, the mean over its criteria of ρ_c(i) (one criterion: ρ under S_i alone)."""
    return {u: float(np.mean([snapshot[c].rank[u] for c in cs])) for u, cs in unit_criteria.items()}


def zscore_values(snapshot: Snapshot, criterion: str) -> dict[UnitId, float]:
    """(s − median) / MAD of the criterion's oriented scores over all active units.

    MAD = median |s − median|; a MAD of 0 (more than half the units tied) divides by 1. A
    degenerate criterion (docs/method.md#scores-and-ranks) scores 0 everywhere: float noise below
    the edge must not order units.
    """
    scores = snapshot[criterion]
    if scores.degenerate:
        return {u: 0.0 for u in scores.oriented}
    values = np.array(list(scores.oriented.values()), dtype=np.float64)
    med = float(np.median(values))
    mad = float(np.median(np.abs(values - med))) or 1.0
    return {u: (float(s) - med) / mad for u, s in scores.oriented.items()}


def zscore_scores(snapshot: Snapshot, unit_criteria: Mapping[UnitId, Sequence[str]]) -> dict[UnitId, float]:
    """Per unit, the mean over its criteria of the robust z-score (`zscore_values`)."""
    z = {c: zscore_values(snapshot, c) for c in sorted({c for cs in unit_criteria.values() for c in cs})}
    return {u: float(np.mean([z[c][u] for c in cs])) for u, cs in unit_criteria.items()}


def _shifted_share(logit: Mapping[UnitId, float]) -> dict[UnitId, float]:
    """p_i = (x_i − min x) / Σ_j (x_j − min x): order-preserving, sums to 1 (uniform if all equal)."""
    low = min(logit.values())
    shifted = {u: v - low for u, v in logit.items()}
    total = sum(shifted.values())
    return {u: (v / total if total > 0 else 1.0 / len(shifted)) for u, v in shifted.items()}


def _check_cover(snapshot: Snapshot, unit_criteria: Mapping[UnitId, Sequence[str]]) -> list[UnitId]:
    names = sorted({c for cs in unit_criteria.values() for c in cs})
    units = _units(snapshot, names)
    if sorted(unit_criteria) != units:
        raise ValueError("unit_criteria must cover exactly the scored (active) units")
    return units


def combine_rank(snapshot: Snapshot, unit_criteria: Mapping[UnitId, Sequence[str]], k: int = 0) -> Combined:
    """`strategy.combine=rank`: logit_i = ρ_i under S_i alone (mean over C_i), p_i = logit_i / Σ logit.

    Every criterion is put on the same percentile scale, so a unit judged by one criterion is
    never out-ranked because another criterion's Θ̃ happens to be spread differently. (`k` unused.)
    """
    _check_cover(snapshot, unit_criteria)
    logit = rank_scores(snapshot, unit_criteria)
    total = sum(logit.values())
    p = {u: v / total for u, v in logit.items()}  # ρ > 0 always
    rho = dict(logit) if all(len(cs) == 1 for cs in unit_criteria.values()) else {}
    return Combined("rank", p, logit, {u: list(cs) for u, cs in unit_criteria.items()}, {}, rho, {})


def combine_zscore(snapshot: Snapshot, unit_criteria: Mapping[UnitId, Sequence[str]], k: int = 0) -> Combined:
    """`strategy.combine=zscore`: logit_i = (s_i − median) / MAD under S_i over all active units.

    p_i = (logit_i − min logit) / Σ (order-preserving; only the order drives removal). (`k` unused.)
    """
    _check_cover(snapshot, unit_criteria)
    logit = zscore_scores(snapshot, unit_criteria)
    return Combined("zscore", _shifted_share(logit), logit, {u: list(cs) for u, cs in unit_criteria.items()},
                    {}, {}, {})


def _combine_paper_registry(snapshot: Snapshot, unit_criteria: Mapping[UnitId, Sequence[str]], k: int) -> Combined:
    """Eq. (1) (one criterion per unit) or the no-partition mean (several per unit)."""
    if all(len(cs) == 1 for cs in unit_criteria.values()):
        return combine_paper(snapshot, {u: cs[0] for u, cs in unit_criteria.items()})
    criteria = list(next(iter(unit_criteria.values()))) if unit_criteria else []
    return combine_no_partition(snapshot, criteria)


COMBINATIONS = {
    "paper": _combine_paper_registry,
    "reference": combine_reference,
    "rank": combine_rank,
    "zscore": combine_zscore,
}
"""`strategy.combine`: name -> fn(snapshot, {unit: [criteria]}, k) -> Combined (paper = the default)."""


def register_combination(name: str, fn) -> None:
    """Add a combination rule (the `prunepeft.combinations` entry points): same signature as the built-ins."""
    if name in COMBINATIONS and COMBINATIONS[name] is not fn:
        raise ValueError(f"combination rule {name!r} is already registered")
    COMBINATIONS[name] = fn


def get_combination(name: str):
    """The combination function of `strategy.combine` (UserError naming the valid choices)."""
    from prunepeft.errors import check_choice

    return COMBINATIONS[check_choice("strategy.combine", str(name), COMBINATIONS)]
