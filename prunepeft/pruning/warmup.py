"""Warm-up maths (Algorithm 1, warm-up; docs/method.md#warm-up): tendencies τ, the hybrid assignment S_H, pick counts.

Pure functions over scored snapshots (`scoring.score_snapshot` at each of the T warm-up
snapshots); the training that produces the snapshots lives in the search loop.

- τ[c][key] = mean of ρ_c over the snapshots and the units of partition key `key` that were
  scored in that snapshot.
- S(key) = argmax_c score[c][key] under the rule `search.warmup.assign` (`assign_rules.py`); the
  default `tendency` scores by τ: the criterion under which the key's units look most prunable.
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

import numpy as np

from prunepeft.run import outputs
from prunepeft.errors import UserError
from prunepeft.pruning.assign_rules import get_assign_rule, needs_importance, scores_are_tau, tendency_scores
from prunepeft.pruning.criteria import assignable, get_criterion, is_null, registry_order
from prunepeft.pruning.hybrid_assignment import HybridAssignment
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
    names = _criteria(snapshots, criteria)
    return tendency_scores(snapshots, partition, names, names)


class WarmupSnapshots(list):
    """The T warm-up snapshots (a list), with what the assignment rule needs besides them.

    Attributes:
        assign: the rule (`search.warmup.assign`) the warm-up was run for.
        importances: per snapshot, the masked-probe importance of each active unit (`agreement`
            only, else None).
        probe: {"rows", "wall_s"} of the agreement probe (else None).
    """

    assign: str = "tendency"
    importances: Optional[list] = None
    probe: Optional[dict] = None
    train_losses: Optional[list] = None  # mean train loss of the steps before each snapshot
    probe_cost: tuple = (0.0, 0)  # (seconds, forward-only rows) of the agreement probe
    rule_alternatives: bool = False  # also derive every other rule's S (`search.diagnostics.grid`)


def degenerate_flags(
    snapshots: Sequence[Snapshot], criteria: Optional[Sequence[str]] = None
) -> dict[str, list[bool]]:
    """Per criterion, its degenerate flag in each snapshot."""
    return {c: [bool(snap[c].degenerate) for snap in snapshots] for c in _criteria(snapshots, criteria)}


def assign(
    tau: Mapping[str, Mapping[PartitionKey, float]],
    always_degenerate: Iterable[str] = (),
) -> dict[PartitionKey, str]:
    """S(key) = argmax_c score[c][key] over the assignable criteria (not null) not always degenerate.

    Args:
        tau: per criterion and key, the rule's score, higher = better (τ for `tendency`).
        always_degenerate: criteria degenerate in every snapshot (excluded; if that leaves none,
            all assignable criteria compete).

    Returns:
        {key: criterion name} for every key in tau, keys sorted.
    """
    names = assignable(registry_order(tau))
    if not names:
        raise ValueError("no criterion to assign (the warm-up scored only null criteria such as random)")
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
    assign_rule: str = "tendency"
    scores: Optional[dict[str, dict[PartitionKey, float]]] = None  # the rule's score[c][key]; None = τ
    agreement: Optional[dict[str, Any]] = None  # agreement probe: rows, wall_s, importance per snapshot
    alternatives: Optional[dict[str, dict[PartitionKey, str]]] = None  # every rule's S (grid runs only)

    @property
    def rule_scores(self) -> dict[str, dict[PartitionKey, float]]:
        """score[c][key] of the assignment rule (τ for `tendency`)."""
        return self.tendencies if self.scores is None else self.scores

    def margins(self) -> dict[str, float]:
        """Per partition key: the rule's score of the assigned criterion minus the best other's."""
        scores = self.rule_scores
        out = {}
        for key, chosen in self.assignment.items():
            others = [d[key] for c, d in scores.items() if c != chosen and key in d and not is_null(c)]
            out[key_str(key)] = scores[chosen][key] - max(others) if others else 0.0
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
            # The rule and (other than tendency, whose scores are τ above) its score[c][key]:
            # `recompute_assignment` re-derives S_H from these.
            "assign": self.assign_rule,
            **({} if self.scores is None else
               {"assign_scores": {c: {key_str(k): v for k, v in d.items()} for c, d in self.scores.items()}}),
            **({} if self.agreement is None else {"agreement": self.agreement}),
            **({} if self.alternatives is None else
               {"rule_assignments": {r: {key_str(k): c for k, c in a.items()} for r, a in self.alternatives.items()}}),
        }


def summarise_warmup(
    snapshots: Sequence[Snapshot],
    partition: Partition,
    top_k: int,
    seed: int,
    criteria: Optional[Sequence[str]] = None,
    assign_rule: Optional[str] = None,
    importances: Optional[Sequence[Mapping[UnitId, float]]] = None,
) -> WarmupResult:
    """τ, S_H, pick counts and degenerate flags from the T warm-up snapshots.

    Args:
        snapshots: one `score_snapshot` result per warm-up snapshot (T ≥ 1).
        partition: the model's partition.
        top_k: k for the pick counts (the search's k).
        seed: tie-break seed for the pick counts.
        criteria: criteria to use (default: every criterion in the snapshots), registry order.
        assign_rule: `search.warmup.assign` (default: `snapshots.assign` of a `WarmupSnapshots`,
            else `tendency`).
        importances: per snapshot, the masked importance of each unit (`agreement`; default:
            `snapshots.importances`).
    """
    if not snapshots:
        raise ValueError("the warm-up needs at least one snapshot")
    rule = str(assign_rule or getattr(snapshots, "assign", "tendency"))
    if importances is None:
        importances = getattr(snapshots, "importances", None)
    names = _criteria(snapshots, criteria)
    tau = tendencies(snapshots, partition, names)
    flags = degenerate_flags(snapshots, names)
    always = [c for c, fl in flags.items() if all(fl)]
    scores = None
    if not scores_are_tau(rule):
        candidates = [c for c in assignable(names) if c not in always] or assignable(names)
        scores = get_assign_rule(rule)(snapshots, partition, names, candidates, importances)
    else:
        get_assign_rule(rule)
    alternatives = None
    if getattr(snapshots, "rule_alternatives", False):
        alternatives = rule_alternatives(snapshots, partition, names, always, importances)
    agreement = None
    if needs_importance(rule):
        from prunepeft.peft.units import unit_key

        agreement = {**(getattr(snapshots, "probe", None) or {}),
                     "importance": [{unit_key(u): v for u, v in sorted(imp.items())} for imp in importances]}
    return WarmupResult(
        criteria=names,
        tendencies=tau,
        assignment=HybridAssignment(assign(tau if scores is None else scores, always), alternatives),
        pick_counts=pick_counts(snapshots, top_k, seed, names),
        degenerate=flags,
        num_snapshots=len(snapshots),
        top_k=top_k,
        partition=partition,
        assign_rule=rule,
        scores=scores,
        agreement=agreement,
        alternatives=alternatives,
    )


def rule_alternatives(snapshots: Sequence[Snapshot], partition: Partition, names: Sequence[str],
                      always: Sequence[str], importances: Optional[Sequence[Mapping[UnitId, float]]]
                      ) -> dict[str, dict[PartitionKey, str]]:
    """S under every rule of `assign_rules.ASSIGN_RULES` from the same snapshots, in registry order;
    `agreement` only when the warm-up measured importances (`search.warmup.assign=agreement`)."""
    from prunepeft.pruning.assign_rules import ASSIGN_RULES

    candidates = [c for c in assignable(names) if c not in always] or assignable(names)
    out = {}
    for rule, fn in ASSIGN_RULES.items():
        if needs_importance(rule) and importances is None:
            continue
        out[rule] = assign(fn(snapshots, partition, names, candidates, importances), always)
    return out


def recompute_assignment(data: Mapping[str, Any]) -> dict[PartitionKey, str]:
    """S_H re-derived from a parsed warmup.json: argmax of the recorded rule scores ("assign_scores",
    or τ for `tendency`) over the criteria not degenerate in every snapshot, ties to registry order."""
    scores = data.get("assign_scores") or data["tendencies"]
    always = [c for c, flags in (data.get("degenerate") or {}).items() if flags and all(flags)]
    return assign({c: {parse_key(k): float(v) for k, v in d.items()} for c, d in scores.items()}, always)


def load_assignment(data: Mapping[str, Any], source: str = outputs.WARMUP) -> HybridAssignment:
    """S_H from a parsed warmup.json (strategy transfer, Table 6; resume), with the other rules'
    assignments when the file recorded them ("rule_assignments").

    Raises:
        UserError: no "assignment" entry, a malformed key or an unknown criterion.
    """
    raw = data.get("assignment") if isinstance(data, Mapping) else None
    if not isinstance(raw, Mapping) or not raw:
        raise UserError(f"{source} has no 'assignment' mapping (expected e.g. {{'b0:lora': 'taylor'}})")
    alternatives = {str(rule): {parse_key(k): get_criterion(str(c)).name for k, c in sorted(a.items())}
                    for rule, a in (data.get("rule_assignments") or {}).items()}
    return HybridAssignment({parse_key(k): get_criterion(str(c)).name for k, c in sorted(raw.items())}, alternatives)


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
    "HybridAssignment",
    "WarmupSnapshots",
    "rule_alternatives",
    "assign",
    "constant_assignment",
    "degenerate_flags",
    "load_assignment",
    "pick_counts",
    "recompute_assignment",
    "summarise_warmup",
    "tendencies",
    "unit_assignment",
]


def chance_loss(labels: Sequence[float], regression: bool) -> float:
    """The train loss of a model that learned nothing but the label distribution of d.

    Classification: the entropy of d's label frequencies in nats (cross-entropy of predicting them;
    ln(classes) when balanced, less for CoLA's 70/30). Regression: the labels' variance (the MSE
    of predicting their mean).
    """
    values = np.asarray(labels, dtype=float)
    if regression:
        return float(values.var())
    _, counts = np.unique(values, return_counts=True)
    freq = counts / counts.sum()
    return float(-(freq * np.log(freq)).sum())


def learning_record(train_losses: Sequence[float], chance: float, margin: float, regression: bool) -> dict[str, Any]:
    """warmup.json's `learning`: did the supernet the assignment S_H was made on learn anything?

    `learned` is false when the last snapshot's train loss is not below the chance loss by
    `search.diagnostics.learned_margin` (nats; for regression that fraction of the variance), the
    same margin the diagnostics use for a round (docs/method.md#warm-up). Scores taken on a
    supernet that learned nothing rank its initialisation, not the task.
    """
    need = margin * chance if regression else margin
    last = float(train_losses[-1]) if train_losses else float("nan")
    return {"train_loss": [round(float(x), 6) for x in train_losses], "chance_loss": round(chance, 6),
            "margin": round(need, 6), "learned": bool(last < chance - need)}
