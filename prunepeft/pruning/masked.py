"""The masked-loss measurement: a unit's importance is the rise in a probe's loss when it ALONE is masked.

A method tool, not an instrument: the `agreement` assignment rule (`assign_rules.agreement_probe`)
and the `masked_loss` criterion (`criteria/masked_loss.py`) score with it, and the diagnostics
instrument (`prunepeft.analysis.diagnostics.Probe`) builds on it. Real masked forward passes in eval
mode under no_grad (`Supernet.masked`, non-destructive): a gradient approximation would be the
taylor criterion itself.
"""
from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch

from prunepeft.pruning.statistics import UnitId
from prunepeft.train.device import autocast, model_device

# The diagnostics probe draws its rows with seed + PROBE_SEED_OFFSET; the method's own probes
# (agreement, masked_loss) remove those rows first, so turning diagnostics on changes no decision.
PROBE_SEED_OFFSET = 7919
# The agreement probe's rows: a stratified draw from the unused training rows with its own seed
# offset, after removing the rows the diagnostics probe draws.
AGREEMENT_SEED_OFFSET = 15485863
AGREEMENT_AUTO_ROWS = (128, 512)  # agreement_probe=null: as many unused rows as are left, within these


@dataclass
class MaskedProbe:
    """Pre-batched rows held aside from training, and the masked passes over them."""

    batches: list[dict[str, torch.Tensor]]
    num_labels: int
    precision: str = "fp32"
    seed: int = 0
    # The probe's own cost since `take_cost` last ran: the wall-clock of the outermost measuring
    # call and the rows of every masked or base pass (`losses`).
    spent_s: float = 0.0
    forward_rows: int = 0
    _timing: bool = False

    @contextmanager
    def _spending(self) -> Iterator[None]:
        if self._timing:  # nested (rises inside an instrument's measurement): the outer call counts
            yield
            return
        self._timing, started = True, time.time()
        try:
            yield
        finally:
            self._timing, self.spent_s = False, self.spent_s + time.time() - started

    def take_cost(self) -> tuple[float, int]:
        """(seconds, forward-only rows) of the probe passes since the last call; resets both."""
        cost = (self.spent_s, self.forward_rows)
        self.spent_s, self.forward_rows = 0.0, 0
        return cost

    @torch.no_grad()
    def losses(self, model: torch.nn.Module) -> tuple[float, float, float]:
        """Mean probe loss of `model` (eval mode): (whole probe, even batches, odd batches)."""
        was_training, device = model.training, model_device(model)
        model.eval()
        totals, counts = [0.0, 0.0], [0, 0]
        try:
            for i, batch in enumerate(self.batches):
                batch = {k: v.to(device) for k, v in batch.items()}
                with autocast(device, self.precision):
                    loss = float(model(**batch).loss.float())
                n = len(batch["labels"])
                totals[i % 2] += loss * n
                counts[i % 2] += n
        finally:
            model.train(was_training)
            self.forward_rows += sum(counts)
        whole = sum(totals) / sum(counts)
        halves = [t / c if c else math.nan for t, c in zip(totals, counts)]
        return whole, halves[0], halves[1]

    def masked_rise(self, supernet: Any, uids: Sequence[UnitId], base: tuple[float, float, float]) -> tuple[float, ...]:
        """Rise of the probe losses (whole, half 1, half 2) when `uids` are masked together."""
        with supernet.masked(uids):
            masked = self.losses(supernet.model)
        return tuple(m - b for m, b in zip(masked, base))

    def rises(self, supernet: Any) -> tuple[dict[UnitId, tuple[float, ...]], tuple[float, float, float]]:
        """(loss rises (whole, half 1, half 2) per active unit masked alone, base losses)."""
        with self._spending():
            base = self.losses(supernet.model)
            return {uid: self.masked_rise(supernet, [uid], base) for uid in supernet.active_ids()}, base

    def importance(self, supernet: Any) -> dict[UnitId, float]:
        """The whole-probe loss rise of every active unit masked alone."""
        rises, _ = self.rises(supernet)
        return {u: r[0] for u, r in rises.items()}
