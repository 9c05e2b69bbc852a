"""Shared by the by-hand maths tests (tests/test_maths_byhand_*.py): the units, a snapshot, ρ by hand.

The five units A-E mix two types (lora, adapter) over five layers; `snap` builds a snapshot's
scores; `_rho` is docs/method.md's percentile rank with average ties, worked out by hand.
"""
from __future__ import annotations

from prunepeft.pruning.scoring import scores_from_oriented

A, B, C, D, E = (0, "lora"), (1, "adapter"), (2, "lora"), (3, "adapter"), (4, "lora")


def snap(**criteria):
    """{criterion: CriterionScores} from {criterion: {uid: oriented}}."""
    return {name: scores_from_oriented(name, values) for name, values in criteria.items()}


def _rho(values, u):
    below = sum(v < values[u] for v in values.values())
    ties = sum(v == values[u] for v in values.values())
    return (below + (ties + 1) / 2) / len(values)
