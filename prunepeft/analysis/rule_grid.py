"""Why does mixing criteria lose signal? Assignment × combination rules on one trained state.

`search.diagnostics.grid=true`: at each diagnosed round, every rule below turns the SAME round's
scores into a pruning distribution p, and each p is judged against the same ground truth
(`diagnostics.Probe`): Spearman(p, −importance), the decision-level percentile of its top-k
removal set (one joint masked pass per distinct set, compared with the round's random sets), the
flattening spread (sd across partition keys of the mean ρ under the assignment) and a key-level
Spearman (key means of prunability against key means of −importance).

Assignments (which criterion S judges each partition key):
- `argmax`: the warm-up's S_H (argmax over criteria of the tendency τ, Algorithm 1);
- `permuted`: S_H's criteria shuffled across keys (same criteria, key link broken; mean over draws);
- `random`: a uniformly random criterion per key (mean over draws);
- `const:<c>`: one criterion for every key;
- `oracle`: per key, the criterion whose ranking of that key's units best matches the truth
  (an upper bound, not a usable rule);
- `rule:<r>`: S under each warm-up rule r of `search.warmup.assign` (`tendency`, `consensus`, and
  `agreement` when the warm-up measured importances), from the same warm-up snapshots
  (`hybrid_assignment.HybridAssignment.alternatives`).
Combinations (how S's scores become p):
- `paper`: Eq. (1), softmax(sigmoid(ρ)·Θ̃) — Θ̃ of different criteria on different scales;
- `rank`: ρ under S_i alone (a common percentile scale);
- `zscore`: (s − median) / MAD of S_i's oriented scores over all active units;
- `reference`: the authors' later variant (`combine.combine_reference`).
All four live in `combine.py` (`strategy.combine` uses the same functions).
A constant assignment gives the same top-k under every combination (all are monotone in one score).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Callable, Optional

import numpy as np

from prunepeft.analysis.rank_stats import decision_percentile, prunability_correlation, random_sets_like, spearman
from prunepeft.pruning.combine import COMBINATIONS as COMBINATION_FNS
from prunepeft.pruning.criteria import assignable
from prunepeft.pruning.masked import PROBE_SEED_OFFSET
from prunepeft.pruning.hybrid_assignment import HybridAssignment
from prunepeft.pruning.partitions import Partition, PartitionKey, key_str
from prunepeft.pruning.selection import select_top_k
from prunepeft.pruning.statistics import UnitId

# The grid's columns: every registered combination (combine.COMBINATIONS). The first four keep the
# order the committed grids were computed in (each new type composition met draws the next seed of
# the random sets, so the order is part of the seeded result); any later one is appended.
_FIRST = ("paper", "rank", "zscore", "reference")
COMBINATIONS = tuple(c for c in _FIRST if c in COMBINATION_FNS) + tuple(c for c in COMBINATION_FNS if c not in _FIRST)
DRAWS = 5  # permuted / random assignments averaged per round (each draw costs masked passes)


def combined_scores(name: str, snapshot: Mapping[str, Any], per_unit: Mapping[UnitId, str], k: int) -> dict[UnitId, float]:
    """The pruning scores p of combination `name` (higher = removed first): `combine.COMBINATIONS`,
    the same functions `strategy.combine` uses."""
    if name not in COMBINATIONS:
        raise ValueError(f"unknown combination {name!r}; valid: {', '.join(COMBINATIONS)}")
    combined = COMBINATION_FNS[name](snapshot, {u: [c] for u, c in per_unit.items()}, k)
    # rank / zscore: the scores themselves (ρ, z), not their normalised p (same order; key means of
    # p could break exact float ties between keys that the scores keep).
    return combined.logit if name in ("rank", "zscore") else combined.p


def oracle_assignment(snapshot: Mapping[str, Any], partition: Partition, importance: Mapping[UnitId, float],
                      criteria: Sequence[str]) -> dict[PartitionKey, str]:
    """Per key, the criterion whose ρ is closest to the percentile of −importance (mean |Δρ|)."""
    uids = sorted(importance)
    order = np.argsort(np.argsort([-importance[u] for u in uids], kind="stable"), kind="stable")
    rho_imp = {u: (order[i] + 1) / len(uids) for i, u in enumerate(uids)}  # 1 = least important
    out = {}
    for key, units in partition.group(uids).items():
        err = {c: float(np.mean([abs(snapshot[c].rank[u] - rho_imp[u]) for u in units])) for c in criteria}
        out[key] = min(criteria, key=lambda c: (err[c], list(criteria).index(c)))
    return out


def assignments(assignment: Mapping[PartitionKey, str], keys: Sequence[PartitionKey], criteria: Sequence[str],
                oracle: Mapping[PartitionKey, str], rng: np.random.Generator, draws: int = DRAWS) -> dict[str, list[dict]]:
    """Every assignment rule of the grid: name -> one or more {key: criterion} draws (`draws` each of
    `permuted` and `random`: DRAWS in-run, where each draw costs masked passes; more offline)."""
    keys = list(keys)
    chosen = [assignment[k] for k in keys]
    out: dict[str, list[dict]] = {"argmax": [dict(assignment)], "oracle": [dict(oracle)]}
    out["permuted"] = [dict(zip(keys, rng.permutation(chosen).tolist())) for _ in range(draws)]
    out["random"] = [{k: str(rng.choice(list(criteria))) for k in keys} for _ in range(draws)]
    for c in criteria:
        out[f"const:{c}"] = [{k: c for k in keys}]
    # S under every warm-up rule (`search.warmup.assign`), derived from the same warm-up snapshots.
    for rule, alternative in (getattr(assignment, "alternatives", None) or {}).items():
        out[f"rule:{rule}"] = [{k: alternative[k] for k in keys}]
    return out


def evaluate_grid(probe: Any, supernet: Any, snapshot: Mapping[str, Any], partition: Partition,
                  assignment: Mapping[PartitionKey, str], importance: Mapping[UnitId, float],
                  base: tuple, random_rises: Sequence[float], k: int, seed: int,
                  search_removed: Sequence[UnitId] = ()) -> dict[str, Any]:
    """The grid for one round (see the module doc); JSON-ready.

    `random_rises` are the loss rises of the round's random sets, drawn like `search_removed` (the
    search's own removal); a rule whose top-k has another type composition gets its own random sets.
    """
    criteria = assignable(snapshot)
    uids = sorted(importance)
    keys = partition.keys(uids)
    oracle = oracle_assignment(snapshot, partition, importance, criteria)
    rules = assignments(HybridAssignment({key: assignment[key] for key in keys}, getattr(assignment, "alternatives", None)),
                        keys, criteria, oracle, np.random.default_rng(seed + 104729))
    rise_cache: dict[tuple, float] = {}

    def rise(removed: list[UnitId]) -> float:
        key = tuple(sorted(removed))
        if key not in rise_cache:
            rise_cache[key] = probe.masked_rise(supernet, list(key), base)[0]
        return rise_cache[key]

    # Each removal set is compared with random sets of ITS OWN type composition (the same parameter
    # count): the search's own random sets serve only the sets that share its composition.
    null_cache: dict[tuple, list[float]] = {}

    def percentile(removed: list[UnitId]) -> float:
        composition = tuple(sorted(t for _, t in removed))
        if composition not in null_cache:
            if composition == tuple(sorted(t for _, t in search_removed)):
                null_cache[composition] = list(random_rises)
            else:
                rng = np.random.default_rng(seed + PROBE_SEED_OFFSET + len(null_cache) + 1)
                sets = random_sets_like(removed, uids, max(1, len(random_rises)), rng)
                null_cache[composition] = [rise(list(s)) for s in sets]
        return decision_percentile(rise(removed), null_cache[composition])

    cells: dict[str, dict[str, Any]] = {}
    for rule, draws in rules.items():
        for combo in COMBINATIONS:
            corr, pct, key_corr, spread = [], [], [], []
            for draw in draws:
                per_unit = {u: draw[partition.key(u)] for u in uids}
                p = combined_scores(combo, snapshot, per_unit, k)
                corr.append(prunability_correlation(p, importance))
                pct.append(percentile(select_top_k(p, k, seed)))
                key_corr.append(key_level_correlation(p, importance, partition))
                spread.append(criterion_spread(snapshot, per_unit, partition))
            cells[f"{rule}|{combo}"] = {"spearman": _mean(corr), "decision_percentile": _mean(pct),
                                        "key_spearman": _mean(key_corr), "spread": _mean(spread), "draws": len(draws)}
    return {"cells": cells, "oracle": {key_str(k_): c for k_, c in oracle.items()}, "masked_sets": len(rise_cache)}


def _mean(values: list[Optional[float]]) -> Optional[float]:
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def key_level_correlation(p: Mapping[UnitId, float], importance: Mapping[UnitId, float], partition: Partition) -> Optional[float]:
    """Spearman, across partition keys, between each key's mean p and its units' mean −importance
    (the grid's key-level column; public: the offline grid recomputes it from committed rounds)."""
    groups = partition.group(sorted(importance))
    keys = sorted(groups)
    return spearman([np.mean([p[u] for u in groups[k]]) for k in keys],
                    [-np.mean([importance[u] for u in groups[k]]) for k in keys])


def criterion_spread(snapshot: Mapping[str, Any], per_unit: Mapping[UnitId, str], partition: Partition) -> float:
    """sd across keys of the mean ρ of each key's units under its assigned criterion."""
    groups = partition.group(sorted(per_unit))
    return float(np.std([np.mean([snapshot[per_unit[u]].rank[u] for u in units]) for units in groups.values()]))


GridFn = Callable[..., dict]
