"""What does a pruning decision know? Ground truth for every round (`search.diagnostics.enabled`).

At the end of each round (and each warm-up snapshot) every active unit is masked ALONE on a probe
slice of held-out training rows, and its importance is the rise in the probe loss (real masked
forward passes: a gradient approximation would be the taylor criterion itself). Then:

- each criterion's Spearman correlation between its prunability and −importance (1 = it ranks
  the units exactly as masking them hurts, least harmful first); the same for the combined p;
- the null: the same correlation for the seeded `random` criterion, whatever the strategy;
- a reliability ceiling: the Spearman between the importance rankings measured on the two halves
  of the probe (a criterion cannot agree with the truth better than the truth agrees with itself);
- "learned nothing": the round's train loss is not below ln(classes) − margin;
- decision level: the round's removed set is masked JOINTLY, and its loss rise is placed among
  `random_sets` random removal sets with the same number of units of each type (so the same
  parameter count). Percentile 0 = the decision hurt less than every random set. Leave-one-out
  misses redundancy between units; this does not.

Masking uses `Supernet.masked` (non-destructive), in eval mode under no_grad, and draws its random
sets from its own generator, so diagnostics on or off give the same search.
"""
from __future__ import annotations

import math
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import torch

from prunepeft.data.subsets import stratified_subset
from prunepeft.data.tokenize import make_loader, tokenize_split
from prunepeft.errors import UserError
from prunepeft.peft.units import unit_key
from prunepeft.pruning.criteria import get_criterion
from prunepeft.pruning.criteria.base import CriterionContext
from prunepeft.pruning.statistics import UnitId
# Re-exported: the rank statistics live below both this module and `rule_grid` (no import circle).
from prunepeft.pruning.rank_stats import (  # noqa: F401
    PROBE_SEED_OFFSET,
    decision_percentile,
    prunability_correlation,
    random_sets_like,
    spearman,
)
from prunepeft.train.device import autocast, model_device



@dataclass
class Probe:
    """Held-out training rows, pre-batched, and the settings of the measurements."""

    batches: list[dict[str, torch.Tensor]]
    num_labels: int
    random_sets: int
    learned_margin: float
    precision: str
    seed: int
    grid: bool = False
    # The probe's own cost since `take_cost` last ran: the wall-clock of `diagnose` / `importance`
    # calls (outermost only) and the rows of every masked or base pass (`losses`).
    spent_s: float = 0.0
    forward_rows: int = 0
    _timing: bool = False

    @contextmanager
    def _spending(self) -> Iterator[None]:
        if self._timing:  # nested (importance inside diagnose): the outer call counts
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

    @classmethod
    def build(cls, cfg: Any, data: Any, tokenizer: Any) -> Optional["Probe"]:
        """The probe of a search, or None when `search.diagnostics.enabled` is false.

        Rows come from the training split but outside everything the search trains on (the run's
        train subset and the `data.heldout` slice), label-stratified and seeded.

        Raises:
            UserError: no such rows (the run trains on the whole split) or fewer than asked for.
        """
        diag = cfg.search.diagnostics
        if not diag.enabled:
            return None
        size = int(diag.probe)
        pool = data.unused_train
        if size < 2:
            raise UserError(f"search.diagnostics.probe must be >= 2, got {size}")
        if pool is None or len(pool) < size:
            have = 0 if pool is None else len(pool)
            raise UserError(
                f"search.diagnostics needs {size} training rows the search never trains on, but only {have} "
                f"are left: set data.train_subset (e.g. 2000) or lower search.diagnostics.probe")
        regression = int(cfg.task.num_labels) == 1
        rows = stratified_subset(pool, size, int(cfg.seed) + PROBE_SEED_OFFSET, cfg.task.label_field, regression)
        ds = tokenize_split(rows, tokenizer, cfg.task, int(cfg.train.max_length))
        batches = list(make_loader(ds, tokenizer, batch_size=int(cfg.train.eval_batch_size), shuffle=False, seed=0))
        return cls(batches, int(cfg.task.num_labels), int(diag.random_sets), float(diag.learned_margin),
                   str(cfg.train.precision), int(cfg.seed), bool(diag.grid))

    # ------------------------------------------------------------------ measurements
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

    def importance(self, supernet: Any) -> tuple[dict[UnitId, float], Optional[float], tuple[float, float, float]]:
        """(loss rise per active unit masked alone, split-half reliability, base losses)."""
        with self._spending():
            return self._importance(supernet)

    def _importance(self, supernet: Any) -> tuple[dict[UnitId, float], Optional[float], tuple[float, float, float]]:
        base = self.losses(supernet.model)
        rises = {uid: self.masked_rise(supernet, [uid], base) for uid in supernet.active_ids()}
        uids = sorted(rises)
        # Split-half reliability of the ground truth itself (undefined with a single probe batch).
        reliability = None if len(self.batches) < 2 else spearman([rises[u][1] for u in uids], [rises[u][2] for u in uids])
        return {u: r[0] for u, r in rises.items()}, reliability, base

    def diagnose(self, supernet: Any, snapshot: Mapping[str, Any], *, p: Optional[Mapping[UnitId, float]] = None,
                 removed: Sequence[UnitId] = (), train_loss: Optional[float] = None, seed: int = 0,
                 grid: Optional[tuple] = None) -> dict[str, Any]:
        """Every measurement of one round or warm-up snapshot, as JSON-ready data (see the module doc).

        `grid` = (partition, assignment S_H or None, k): with `search.diagnostics.grid`, also judge
        every assignment × combination rule of `rule_grid` on this round's state.
        """
        with self._spending():
            return self._diagnose(supernet, snapshot, p=p, removed=removed, train_loss=train_loss, seed=seed, grid=grid)

    def _diagnose(self, supernet: Any, snapshot: Mapping[str, Any], *, p: Optional[Mapping[UnitId, float]],
                  removed: Sequence[UnitId], train_loss: Optional[float], seed: int,
                  grid: Optional[tuple]) -> dict[str, Any]:
        started = time.time()
        importance, reliability, base = self.importance(supernet)
        params = {u: sum(int(t.numel()) for t in supernet.unit_parameters(u).values()) for u in importance}
        correlation = {name: prunability_correlation(s.oriented, importance) for name, s in snapshot.items()}
        null_scores = get_criterion("random").oriented(importance, CriterionContext(seed=seed))
        out: dict[str, Any] = {
            "probe_loss": base[0],
            "importance": {unit_key(u): v for u, v in sorted(importance.items())},
            "importance_per_param": {unit_key(u): v / max(1, params[u]) for u, v in sorted(importance.items())},
            "spearman": correlation,
            "spearman_combined": None if p is None else prunability_correlation(p, importance),
            "spearman_null": prunability_correlation(null_scores, importance),
            "reliability": reliability,
            "learned": self.learned(train_loss),
        }
        if removed:
            out["decision"] = self.decision(supernet, removed, base, seed)
            if self.grid and grid is not None and grid[1] is not None:
                from prunepeft.pruning.rule_grid import evaluate_grid

                out["grid"] = evaluate_grid(self, supernet, snapshot, grid[0], grid[1], importance, base,
                                            out["decision"]["random_rises"], grid[2], seed, search_removed=removed)
        out["wall_s"] = round(time.time() - started, 3)
        return out

    def learned(self, train_loss: Optional[float]) -> Optional[bool]:
        """False when a classification round's train loss is not below ln(classes) − margin."""
        if train_loss is None or self.num_labels < 2:
            return None
        return bool(train_loss < math.log(self.num_labels) - self.learned_margin)

    def decision(self, supernet: Any, removed: Sequence[UnitId], base: tuple[float, float, float],
                 seed: int) -> dict[str, Any]:
        """The removed set's joint loss rise against random sets of the same type composition."""
        rng = np.random.default_rng(seed + PROBE_SEED_OFFSET)
        sets = random_sets_like(removed, supernet.active_ids(), self.random_sets, rng)
        rise = self.masked_rise(supernet, removed, base)[0]
        random_rises = [self.masked_rise(supernet, s, base)[0] for s in sets]
        return {"removed_rise": rise, "random_rises": random_rises,
                "percentile": decision_percentile(rise, random_rises)}


def signal_summary(rounds: Sequence[Mapping[str, Any]]) -> Optional[dict[str, Any]]:
    """One run's signal over its rounds (None when diagnostics were off): mean Spearman of the combined
    p with −importance, the random null, their difference, the mean decision percentile and how many
    rounds learned nothing."""
    diags = [r["diagnostics"] for r in rounds if r.get("diagnostics")]
    if not diags:
        return None

    def mean(values: list) -> Optional[float]:
        values = [v for v in values if v is not None]
        return float(np.mean(values)) if values else None

    comb, null = mean([d.get("spearman_combined") for d in diags]), mean([d.get("spearman_null") for d in diags])
    return {"rounds": len(diags), "spearman_combined": comb, "spearman_null": null,
            "corrected": None if comb is None or null is None else comb - null,
            "decision_percentile": mean([(d.get("decision") or {}).get("percentile") for d in diags]),
            "learned_nothing": sum(1 for d in diags if d.get("learned") is False)}
