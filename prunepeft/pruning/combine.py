"""Combine per-criterion scores into one pruning distribution p over the active units.

- `combine_paper`: Eq. (1) of the paper. Unit i is judged by its partition's criterion S_i:
  ρ_i = its prunability percentile under S_i among all active units, k_i = sigmoid(ρ_i),
  p_i = softmax_i(k_i·Θ̃_i) with Θ̃_i its min-max normalised score under S_i.
- `combine_no_partition`: the `hybrid_no_partition` ablation (Table 5; the authors' "mixed"):
  each unit scored by the mean over the criteria c of sigmoid(ρ_c)·Θ̃_c, then softmax.
- `combine_reference`: the authors' LATER code (NOT the paper's Eq. (1)); see its docstring.
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
    """1 / (1 + e^-x)."""
    return 1.0 / (1.0 + math.exp(-x))


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
        method: "paper", "no_partition" or "reference".
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
