"""Warm-up maths (Algorithm 1, warm-up; docs/method.md#warm-up): tendencies τ, the hybrid assignment S_H, pick counts.

Pure functions over scored snapshots (`scoring.score_snapshot` at each of the T warm-up
snapshots); the training that produces the snapshots lives in the search loop.

- τ[c][key] = mean of ρ_c over the snapshots and the units of partition key `key` that were
  scored in that snapshot.
- S(key) = argmax_c τ[c][key]: the criterion under which the key's units look most prunable.
  `random` never takes part. A criterion that was degenerate in EVERY snapshot is excluded (its
  ρ is a constant tie, which says nothing about the key); one that was degenerate in only some
  snapshots stays, its tied snapshots pulling its τ towards the middle. If every candidate was
  always degenerate, all of them compete again. Ties (within 1e-12) go to registry order.
- pick counts (Figure 1): per criterion and unit, in how many snapshots the unit was among the
  criterion's top-k most prunable (seeded tie-break, seed + snapshot index).
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Optional

from prunepeft.errors import UserError
from prunepeft.pruning.criteria import get_criterion, registry_order
from prunepeft.pruning.partitions import Partition, PartitionKey, key_str, parse_key
from prunepeft.pruning.scoring import Snapshot
from prunepeft.pruning.selection import select_top_k
from prunepeft.pruning.statistics import UnitId

TIE_TOL = 1e-12


def _criteria(snapshots: Sequence[Snapshot], criteria: Optional[Sequence[str]]) -> list[str]:
    if criteria is not None:
        return registry_order(criteria)
    return registry_order({c for snap in snapshots for c in snap})


def tendencies(
    snapshots: Sequence[Snapshot], partition: Partition, criteria: Optional[Sequence[str]] = None
) -> dict[str, dict[PartitionKey, float]]:
    """τ[c][key] = mean ρ_c over snapshots and the key's units (keys sorted, criteria in registry order)."""
    out: dict[str, dict[PartitionKey, float]] = {}
    for c in _criteria(snapshots, criteria):
        sums: dict[PartitionKey, float] = {}
        counts: dict[PartitionKey, int] = {}
        for snap in snapshots:
            for uid, rho in snap[c].rank.items():
                key = partition.key(uid)
                sums[key] = sums.get(key, 0.0) + rho
                counts[key] = counts.get(key, 0) + 1
        out[c] = {key: sums[key] / counts[key] for key in sorted(sums)}
    return out


def degenerate_flags(
    snapshots: Sequence[Snapshot], criteria: Optional[Sequence[str]] = None
) -> dict[str, list[bool]]:
    """Per criterion, its degenerate flag in each snapshot."""
    return {c: [bool(snap[c].degenerate) for snap in snapshots] for c in _criteria(snapshots, criteria)}


def assign(
    tau: Mapping[str, Mapping[PartitionKey, float]],
    always_degenerate: Iterable[str] = (),
) -> dict[PartitionKey, str]:
    """S(key) = argmax_c τ[c][key] over the non-random criteria not always degenerate.

    Args:
        tau: tendencies (`tendencies`).
        always_degenerate: criteria degenerate in every snapshot (excluded; if that leaves none,
            all non-random criteria compete).

    Returns:
        {key: criterion name} for every key in tau, keys sorted.
    """
    names = [c for c in registry_order(tau) if c != "random"]
    if not names:
        raise ValueError("no non-random criterion to assign (warm-up scored only 'random')")
    excluded = set(always_degenerate)
    candidates = [c for c in names if c not in excluded] or names
    keys = sorted({key for c in names for key in tau[c]})
    out: dict[PartitionKey, str] = {}
    for key in keys:
        best: Optional[str] = None
        for c in candidates:  # registry order: strictly better wins, so ties keep the earlier one
            if key in tau[c] and (best is None or tau[c][key] > tau[best][key] + TIE_TOL):
                best = c
        if best is not None:
            out[key] = best
    return out


def pick_counts(
    snapshots: Sequence[Snapshot], top_k: int, seed: int, criteria: Optional[Sequence[str]] = None
) -> dict[str, dict[UnitId, int]]:
    """Per criterion and unit: snapshots in which the unit was in the criterion's top-k most prunable."""
    out: dict[str, dict[UnitId, int]] = {}
    for c in _criteria(snapshots, criteria):
        counts: dict[UnitId, int] = {}
        for t, snap in enumerate(snapshots):
            for uid in snap[c].rank:
                counts.setdefault(uid, 0)
            for uid in select_top_k(snap[c].rank, top_k, seed + t):
                counts[uid] += 1
        out[c] = dict(sorted(counts.items()))
    return out


@dataclass
class WarmupResult:
    """Everything `warmup.json` holds."""

    criteria: list[str]
    tendencies: dict[str, dict[PartitionKey, float]]
    assignment: dict[PartitionKey, str]
    pick_counts: dict[str, dict[UnitId, int]]
    degenerate: dict[str, list[bool]]
    num_snapshots: int
    top_k: int
    partition: Partition

    def margins(self) -> dict[str, float]:
        """Per partition key: τ of the assigned criterion minus the best other criterion's τ."""
        out = {}
        for key, chosen in self.assignment.items():
            others = [d[key] for c, d in self.tendencies.items() if c != chosen and key in d]
            out[key_str(key)] = self.tendencies[chosen][key] - max(others) if others else 0.0
        return out

    def to_json(self) -> dict[str, Any]:
        """JSON-serialisable dict (partition keys "b1:lora", unit keys "3:lora")."""
        from prunepeft.peft.units import unit_key

        return {
            "criteria": list(self.criteria),
            "snapshots": self.num_snapshots,
            "top_k": self.top_k,
            "partition": {
                "num_layers": self.partition.num_layers,
                "cuts": list(self.partition.cuts),
                "boundaries": list(self.partition.bounds),
            },
            "tendencies": {c: {key_str(k): v for k, v in d.items()} for c, d in self.tendencies.items()},
            "assignment": {key_str(k): c for k, c in self.assignment.items()},
            "degenerate": {c: list(v) for c, v in self.degenerate.items()},
            "pick_counts": {c: {unit_key(u): n for u, n in d.items()} for c, d in self.pick_counts.items()},
        }


def summarise_warmup(
    snapshots: Sequence[Snapshot],
    partition: Partition,
    top_k: int,
    seed: int,
    criteria: Optional[Sequence[str]] = None,
) -> WarmupResult:
    """τ, S_H, pick counts and degenerate flags from the T warm-up snapshots.

    Args:
        snapshots: one `score_snapshot` result per warm-up snapshot (T ≥ 1).
        partition: the model's partition.
        top_k: k for the pick counts (the search's k).
        seed: tie-break seed for the pick counts.
        criteria: criteria to use (default: every criterion in the snapshots), registry order.
    """
    if not snapshots:
        raise ValueError("the warm-up needs at least one snapshot")
    names = _criteria(snapshots, criteria)
    tau = tendencies(snapshots, partition, names)
    flags = degenerate_flags(snapshots, names)
    always = [c for c, fl in flags.items() if all(fl)]
    return WarmupResult(
        criteria=names,
        tendencies=tau,
        assignment=assign(tau, always),
        pick_counts=pick_counts(snapshots, top_k, seed, names),
        degenerate=flags,
        num_snapshots=len(snapshots),
        top_k=top_k,
        partition=partition,
    )


def load_assignment(data: Mapping[str, Any], source: str = "warmup.json") -> dict[PartitionKey, str]:
    """S_H from a parsed warmup.json (strategy transfer, Table 6).

    Raises:
        UserError: no "assignment" entry, a malformed key or an unknown criterion.
    """
    raw = data.get("assignment") if isinstance(data, Mapping) else None
    if not isinstance(raw, Mapping) or not raw:
        raise UserError(f"{source} has no 'assignment' mapping (expected e.g. {{'b0:lora': 'taylor'}})")
    return {parse_key(k): get_criterion(str(c)).name for k, c in sorted(raw.items())}


def unit_assignment(
    uids: Iterable[UnitId], partition: Partition, assignment: Mapping[PartitionKey, str]
) -> dict[UnitId, str]:
    """S_i = S_H(key(i)) for each unit (what `combine.combine_paper` takes).

    Raises:
        UserError: a unit's partition key has no criterion in S_H (e.g. a transferred S_H from a
            different search space).
    """
    out: dict[UnitId, str] = {}
    for uid in uids:
        key = partition.key(uid)
        if key not in assignment:
            have = ", ".join(key_str(k) for k in sorted(assignment))
            raise UserError(
                f"the hybrid assignment has no criterion for partition {key_str(key)!r}; it covers: {have}"
            )
        out[uid] = assignment[key]
    return out


def constant_assignment(uids: Iterable[UnitId], criterion: str) -> dict[UnitId, str]:
    """Every unit judged by one criterion (`single`, `random` strategies)."""
    name = get_criterion(criterion).name
    return {uid: name for uid in uids}


__all__ = [
    "WarmupResult",
    "assign",
    "constant_assignment",
    "degenerate_flags",
    "load_assignment",
    "pick_counts",
    "summarise_warmup",
    "tendencies",
    "unit_assignment",
]
