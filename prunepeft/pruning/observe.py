"""The search's observer hook: how instruments (prunepeft.analysis) watch a search they do not steer.

The command hands `search()` an observer; the method calls it at fixed points and records what it
returns beside its own rows (`warmup.json`'s diagnostics, a round's `diagnostics`). The method never
imports an instrument, and an observer must leave every decision unchanged (its own rows, its own
random generator). The time an observer spends is charged to its own cost phase (`take_cost`).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Optional

from prunepeft.pruning.statistics import UnitId


class SearchObserver:
    """Does nothing: the search without instruments. Subclasses override the hooks they need."""

    def on_data(self, data: Any, tokenizer: Any) -> None:
        """The data is built, before `run.json` is written: check inputs here (raise UserError)."""

    def on_assignment(self, partition: Any, assignment: Optional[Mapping], k: int) -> None:
        """The hybrid assignment S_H (None without a warm-up), before the first round."""

    def on_warmup_snapshot(self, supernet: Any, snapshot: Mapping[str, Any]) -> Optional[dict]:
        """After each warm-up snapshot is scored: JSON-ready data for warmup.json, or None."""
        return None

    def on_round(self, supernet: Any, snapshot: Mapping[str, Any], p: Mapping[UnitId, float],
                 removed: Sequence[UnitId], fitted: Any, seed: int) -> Optional[dict]:
        """After a round chose its removals, before they are removed: data for its rounds.jsonl row."""
        return None

    def take_cost(self) -> tuple[float, int]:
        """(seconds, forward-only rows) spent since the last call: taken out of the method's phases."""
        return 0.0, 0
