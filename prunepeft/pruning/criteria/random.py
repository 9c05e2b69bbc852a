"""`random`: a seeded uniform score per unit (the random-pruning ablation of Table 5).

Each unit's score depends only on (seed, unit id) through a stable hash, so it does not change
with the set of other active units, the dict order or the Python hash seed.
"""
from __future__ import annotations

import hashlib

from prunepeft.pruning.criteria.base import Criterion, CriterionContext, Scores, Stats
from prunepeft.pruning.statistics import UnitId


def unit_uniform(seed: int, uid: UnitId) -> float:
    """A uniform number in [0, 1) from (seed, uid), stable across processes and platforms."""
    digest = hashlib.blake2b(f"{seed}|{uid[0]}|{uid[1]}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


class RandomCriterion(Criterion):
    """Uniform in [0, 1) per unit, seeded by CriterionContext.seed; kept as is."""

    name = "random"
    needs = frozenset()
    higher_is_prunable = True
    null = True  # noise: never assigned by the warm-up; the diagnostics' null
    in_default_hybrid = False

    def raw(self, stats: Stats, ctx: CriterionContext) -> Scores:
        return {uid: unit_uniform(ctx.seed, uid) for uid in stats}
