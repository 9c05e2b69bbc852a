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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
from prunepeft.data.subsets import stratified_subset
from prunepeft.data.tokenize import make_loader, tokenize_split
from prunepeft.errors import UserError
from prunepeft.peft.units import unit_key
from prunepeft.pruning.criteria import null_criterion
from prunepeft.pruning.criteria.base import CriterionContext
from prunepeft.pruning.statistics import UnitId
from prunepeft.analysis.rank_stats import decision_percentile, prunability_correlation, random_sets_like, spearman
from prunepeft.pruning.masked import PROBE_SEED_OFFSET, MaskedProbe
from prunepeft.pruning.observe import SearchObserver



@dataclass
class Probe(MaskedProbe):
    """The masked-loss measurement (`pruning.masked.MaskedProbe`) on the diagnostics' own rows, plus
    the settings of the measurements built on it."""

    random_sets: int = 0
    learned_margin: float = 0.0
    grid: bool = False

    @classmethod
    def build(cls, diag: Any, data: Any, tokenizer: Any) -> Optional["Probe"]:
        """The probe of a search, or None when `search.diagnostics.enabled` is false.

        Rows come from the training split but outside everything the search trains on (the run's
        train subset and the `data.heldout` slice), label-stratified and seeded.

        Raises:
            UserError: no such rows (the run trains on the whole split) or fewer than asked for.
        """
        if not diag.enabled:  # diag: config.typed.DiagnosticsSettings
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
        task = diag.task
        regression = int(task.num_labels) == 1
        rows = stratified_subset(pool, size, diag.seed + PROBE_SEED_OFFSET, task.label_field, regression)
        ds = tokenize_split(rows, tokenizer, task, diag.max_length)
        batches = list(make_loader(ds, tokenizer, batch_size=diag.eval_batch_size, shuffle=False, seed=0))
        return cls(batches, int(task.num_labels), diag.precision, diag.seed,
                   random_sets=diag.random_sets, learned_margin=diag.learned_margin, grid=diag.grid)

    # ------------------------------------------------------------------ measurements
    def measure(self, supernet: Any) -> tuple[dict[UnitId, float], Optional[float], tuple[float, float, float]]:
        """(loss rise per active unit masked alone, split-half reliability, base losses)."""
        rises, base = self.rises(supernet)
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
        importance, reliability, base = self.measure(supernet)
        params = {u: sum(int(t.numel()) for t in supernet.unit_parameters(u).values()) for u in importance}
        correlation = {name: prunability_correlation(s.oriented, importance) for name, s in snapshot.items()}
        null_scores = null_criterion().oriented(importance, CriterionContext(seed=seed))  # random, built in
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
                from prunepeft.analysis.rule_grid import evaluate_grid  # imports this module's Probe

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


class DiagnosticsObserver(SearchObserver):
    """`search.diagnostics`: the ground truth of every warm-up snapshot and round, as a search observer.

    Built by the command from its typed `DiagnosticsSettings`; its probe is drawn once the data exists
    (`on_data`, before run.json is written, so too few rows fail early). The method calls it and
    records what it returns.
    """

    def __init__(self, settings: Any) -> None:
        self.settings, self.probe, self.grid_state = settings, None, None

    def on_data(self, data: Any, tokenizer: Any) -> None:
        self.probe = Probe.build(self.settings, data, tokenizer)

    def on_assignment(self, partition: Any, assignment: Optional[Mapping], k: int) -> None:
        self.grid_state = (partition, assignment, k)

    def on_warmup_snapshot(self, supernet: Any, snapshot: Mapping[str, Any]) -> Optional[dict]:
        if self.probe is None or not self.settings.warmup:
            return None
        return self.probe.diagnose(supernet, snapshot)

    def on_round(self, supernet: Any, snapshot: Mapping[str, Any], p: Mapping[UnitId, float],
                 removed: Sequence[UnitId], fitted: Any, seed: int) -> Optional[dict]:
        if self.probe is None:
            return None
        return self.probe.diagnose(supernet, snapshot, p=p, removed=removed, seed=seed,
                                   train_loss=fitted.history[-1]["train_loss"], grid=self.grid_state)

    def take_cost(self) -> tuple[float, int]:
        return self.probe.take_cost() if self.probe is not None else (0.0, 0)


def observer_for(settings: Any) -> Optional[SearchObserver]:
    """The observer `search.diagnostics` (a `config.typed.DiagnosticsSettings`) asks for, or None."""
    return DiagnosticsObserver(settings) if settings.enabled else None
