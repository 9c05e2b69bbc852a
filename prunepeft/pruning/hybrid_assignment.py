"""S_H, the hybrid assignment (Algorithm 1, warm-up): {partition key: criterion}.

Its own module, below both `warmup` (which builds it) and `rule_grid` (which judges the rules it
carries), so that neither has to import the other (tests/test_imports.py: no import circle).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Optional

from prunepeft.pruning.partitions import PartitionKey


class HybridAssignment(dict):
    """S_H as {partition key: criterion}, carrying the assignments the OTHER rules of
    `assign_rules.ASSIGN_RULES` would have made from the same warm-up snapshots (`alternatives`,
    rule name -> {key: criterion}; empty unless `search.diagnostics.grid`), so the rule grid of
    round 1 (`rule_grid`) can judge every rule on one trained state."""

    def __init__(self, assignment: Mapping[PartitionKey, str] = (), alternatives: Optional[Mapping] = None):
        super().__init__(assignment)
        self.alternatives: dict[str, dict[PartitionKey, str]] = dict(alternatives or {})
