"""Assignment rules of the warm-up (`search.warmup.assign`; docs/method.md#assignment-rules).

The paper assigns to each partition "the pruning strategy S_i that most effectively matches the
characteristics of partition P_i" and does not define "matches". Each rule below is one reading:
a score[c][key] per criterion c and partition key (higher = better match); S_H(key) is the argmax
over the candidate criteria (`warmup.assign`, ties within 1e-12 to the registry order). All are
defined on GLOBAL percentiles ρ_c(i) (rank among all active units, 1 = most prunable), because a
key holds only 1–2 units on a 6-layer model, so within-key rankings say nothing.

- `tendency` (the paper preset's default, today's reading): τ[c][key] = mean of ρ_c over the
  snapshots and the key's units: the criterion under which the key looks MOST prunable.
- `consensus`: −mean over snapshots and the key's units of |ρ_c(i) − mean_c′ ρ_c′(i)|, c′ over
  the candidate criteria: the criterion closest to what all criteria say about the key's units.
- `agreement`: −mean over snapshots and the key's units of |ρ_c(i) − ρ_imp(i)|, with ρ_imp(i) the
  percentile of −importance(i) among all active units (1 = the least important unit), importance
  = the probe-loss rise when unit i alone is masked at that snapshot (`masked.MaskedProbe`), on a
  probe disjoint from the diagnostics probe (`agreement_probe`). Costs one masked pass per unit
  per warm-up snapshot.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Optional

import numpy as np
from scipy.stats import rankdata

from prunepeft.config.typed import ProbeSettings
from prunepeft.errors import UserError
from prunepeft.pruning.partitions import Partition, PartitionKey
from prunepeft.pruning.scoring import Snapshot
from prunepeft.pruning.statistics import UnitId
from prunepeft.pruning.criteria import assignable
from prunepeft.pruning.masked import AGREEMENT_AUTO_ROWS, AGREEMENT_SEED_OFFSET


Scores = dict[str, dict[PartitionKey, float]]


def key_means(snapshots: Sequence[Snapshot], partition: Partition, criterion: str,
              value: Callable[[int, UnitId, float], float]) -> dict[PartitionKey, float]:
    """mean over snapshots t and the key's units i of value(t, i, ρ_c^t(i)), keys sorted."""
    sums: dict[PartitionKey, float] = {}
    counts: dict[PartitionKey, int] = {}
    for t, snap in enumerate(snapshots):
        for uid, rho in snap[criterion].rank.items():
            key = partition.key(uid)
            sums[key] = sums.get(key, 0.0) + value(t, uid, rho)
            counts[key] = counts.get(key, 0) + 1
    return {key: sums[key] / counts[key] for key in sorted(sums)}


def tendency_scores(snapshots: Sequence[Snapshot], partition: Partition, criteria: Sequence[str],
                    candidates: Sequence[str], importances: Optional[Sequence[Mapping[UnitId, float]]] = None) -> Scores:
    """τ[c][key] = mean ρ_c over snapshots and the key's units."""
    return {c: key_means(snapshots, partition, c, lambda t, u, rho: rho) for c in criteria}


def consensus_scores(snapshots: Sequence[Snapshot], partition: Partition, criteria: Sequence[str],
                     candidates: Sequence[str], importances: Optional[Sequence[Mapping[UnitId, float]]] = None) -> Scores:
    """−mean |ρ_c(i) − mean_c′ ρ_c′(i)| over snapshots and the key's units (c′ over `candidates`)."""
    pool = assignable(candidates) or assignable(criteria)
    centre = [{u: float(np.mean([snap[c].rank[u] for c in pool])) for u in snap[pool[0]].rank} for snap in snapshots]
    return {c: key_means(snapshots, partition, c, lambda t, u, rho: -abs(rho - centre[t][u])) for c in criteria}


def importance_percentiles(importance: Mapping[UnitId, float]) -> dict[UnitId, float]:
    """ρ_imp(i) = rankdata(−importance, "average")_i / n (1 = the least important unit, ties averaged)."""
    uids = sorted(importance)
    ranks = rankdata(np.array([-importance[u] for u in uids], dtype=np.float64), method="average")
    return {u: float(r) / len(uids) for u, r in zip(uids, ranks)}


def agreement_scores(snapshots: Sequence[Snapshot], partition: Partition, criteria: Sequence[str],
                     candidates: Sequence[str], importances: Optional[Sequence[Mapping[UnitId, float]]] = None) -> Scores:
    """−mean |ρ_c(i) − ρ_imp(i)| over snapshots and the key's units (one importance map per snapshot)."""
    if importances is None or len(importances) != len(snapshots):
        have = "none" if importances is None else len(importances)
        raise ValueError(f"search.warmup.assign=agreement needs one importance map per warm-up snapshot "
                         f"({len(snapshots)}), got {have}")
    rho_imp = [importance_percentiles(imp) for imp in importances]
    return {c: key_means(snapshots, partition, c, lambda t, u, rho: -abs(rho - rho_imp[t][u])) for c in criteria}


# What a rule needs and records is a property of its entry, never of its name: a function attribute
# `needs_importance` (the warm-up measures each unit's masked importance at every snapshot, with the
# `agreement_probe`, and warmup.json records it) and `scores_are_tau` (its scores are τ itself:
# warmup.json keeps τ only). A plug-in rule without them needs neither.
agreement_scores.needs_importance = True  # type: ignore[attr-defined]
tendency_scores.scores_are_tau = True  # type: ignore[attr-defined]

ASSIGN_RULES: dict[str, Callable[..., Scores]] = {
    "tendency": tendency_scores,
    "agreement": agreement_scores,
    "consensus": consensus_scores,
}
"""`search.warmup.assign`: name -> fn(snapshots, partition, criteria, candidates, importances) -> score[c][key]."""


def register_assign_rule(name: str, rule: Callable[..., Scores]) -> None:
    """Add an assignment rule (the `prunepeft.assign_rules` entry points): same signature as the built-ins."""
    if name in ASSIGN_RULES and ASSIGN_RULES[name] is not rule:
        raise ValueError(f"assignment rule {name!r} is already registered")
    ASSIGN_RULES[name] = rule


def needs_importance(name: str) -> bool:
    """Whether the rule `name` reads the masked importances of the warm-up's snapshots."""
    return bool(getattr(get_assign_rule(name), "needs_importance", False))


def scores_are_tau(name: str) -> bool:
    """Whether the rule `name` scores with τ itself (no scores of its own to record)."""
    return bool(getattr(get_assign_rule(name), "scores_are_tau", False))


def get_assign_rule(name: str) -> Callable[..., Scores]:
    """The rule of `search.warmup.assign` (UserError naming the valid choices)."""
    from prunepeft.errors import check_choice

    return ASSIGN_RULES[check_choice("search.warmup.assign", str(name), ASSIGN_RULES)]




def agreement_rows(probes: ProbeSettings, pool: Any) -> Any:
    """The raw rows of the agreement probe: `search.warmup.agreement_probe` rows of `pool` (the
    run's unused training rows), label-stratified with seed + AGREEMENT_SEED_OFFSET, after removing
    the rows the diagnostics probe draws (removed whenever the pool could hold them, diagnostics on
    or off, so the search does not depend on `search.diagnostics.enabled`). With agreement_probe
    null, the probe takes every row left, up to 512, and needs at least 128.

    Raises:
        UserError: no unused training rows, or fewer than asked for.
    """
    from prunepeft.data.glue import column_values
    from prunepeft.data.subsets import stratified_indices, stratified_subset
    from prunepeft.pruning.masked import PROBE_SEED_OFFSET

    asked, task, seed = probes.agreement_rows, probes.task, probes.seed
    size = AGREEMENT_AUTO_ROWS[0] if asked is None else int(asked)
    regression = int(task.num_labels) == 1
    if size < 2:
        raise UserError(f"search.warmup.agreement_probe must be >= 2 (or null), got {size}")
    if pool is not None:
        diag_size = probes.diagnostics_rows
        if diag_size >= 2 and len(pool) >= diag_size:
            labels = np.asarray(column_values(pool, task.label_field))
            taken = set(stratified_indices(labels, diag_size, seed + PROBE_SEED_OFFSET, regression).tolist())
            pool = pool.select([i for i in range(len(pool)) if i not in taken])
    have = 0 if pool is None else len(pool)
    if have < size:
        raise UserError(
            f"search.warmup.assign=agreement needs {size} training rows the search never trains on (outside the "
            f"diagnostics probe), but only {have} are left: set data.train_subset (e.g. 2000) or lower "
            f"search.warmup.agreement_probe" + (f" (null asks for {size} to {AGREEMENT_AUTO_ROWS[1]})" if asked is None else ""))
    if asked is None:
        size = min(have, AGREEMENT_AUTO_ROWS[1])
    return stratified_subset(pool, size, seed + AGREEMENT_SEED_OFFSET, task.label_field, regression)


def agreement_probe(probes: ProbeSettings, data: Any, tokenizer: Any) -> Any:
    """The `masked.MaskedProbe` of `assign=agreement` on `agreement_rows` of `data.unused_train`."""
    from prunepeft.data.tokenize import make_loader, tokenize_split
    from prunepeft.pruning.masked import MaskedProbe

    rows = agreement_rows(probes, None if data is None else data.unused_train)
    ds = tokenize_split(rows, tokenizer, probes.task, probes.max_length)
    batches = list(make_loader(ds, tokenizer, batch_size=probes.eval_batch_size, shuffle=False, seed=0))
    return MaskedProbe(batches, int(probes.task.num_labels), probes.precision, probes.seed)


__all__ = ["AGREEMENT_AUTO_ROWS", "AGREEMENT_SEED_OFFSET", "ASSIGN_RULES", "agreement_probe", "agreement_rows", "agreement_scores", "consensus_scores",
           "get_assign_rule", "importance_percentiles", "key_means", "needs_importance", "register_assign_rule",
           "scores_are_tau", "tendency_scores"]
