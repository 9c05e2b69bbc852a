"""Training phases of the search: the warm-up pass with T snapshots, and one pruning round.

Both train the supernet with the one loop (`prunepeft.train.fit`) while a StatisticsCollector
gathers, in the same pass, what every criterion needs (Table 1; docs/method.md#criteria).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from prunepeft.config.typed import SearchSettings, TrainSettings
from prunepeft.pruning import arms
from prunepeft.pruning.assign_rules import agreement_probe, needs_importance
from prunepeft.pruning.collector import StatisticsCollector
from prunepeft.pruning.criteria import needs_of
from prunepeft.pruning.masked_probe import masked_loss_probe
from prunepeft.pruning.scoring import Snapshot, score_snapshot
from prunepeft.pruning.warmup import WarmupSnapshots
from prunepeft.seed import generator
from prunepeft.train import build_param_groups, fit
from prunepeft.train.callbacks import Callback

log = logging.getLogger(__name__)


def train_supernet(supernet, tokenizer, train_ds, eval_sets, train: TrainSettings, *, epochs: int, seed: int,
                   phase: str, run=None, callbacks=(), lr=None):
    """Train the active units and the head of `supernet` (backbone frozen) with `fit`.

    `train`: the training loop's settings (the `train` section and the task). `lr`: one rate for the
    units and the head instead of train.lr_peft / lr_head (the warm-up's own).
    """
    rates = train.loop if lr is None else SimpleNamespace(**{**dict(train.loop), "lr_peft": lr, "lr_head": lr})
    groups = build_param_groups(peft=supernet.peft_parameters(), head=supernet.head_parameters(),
                                train_cfg=rates)
    return fit(supernet.model, groups, train_ds, eval_sets, tokenizer, train_cfg=train.loop, task=train.task,
               epochs=epochs, seed=seed, callbacks=callbacks, run=run, phase=phase)


@dataclass
class SnapshotTaker(Callback):
    """Scores every criterion at T evenly spaced optimizer steps of the warm-up (Algorithm 1).

    Each snapshot scores the statistics gathered since the previous one (the collector is reset
    after every snapshot), so the T snapshots see the supernet at T stages of training.
    """

    collector: StatisticsCollector
    criteria: tuple[str, ...]
    snapshots: int
    context: Any  # the criteria's CriterionContext (pruning.setup), re-seeded per snapshot
    seed: int
    observer: Any = None  # a pruning.observe.SearchObserver (instruments), or None
    assign_probe: Any = None  # search.warmup.assign=agreement: importance at each snapshot
    taken: list[Snapshot] = field(default_factory=list)
    diagnostics: list[dict] = field(default_factory=list)
    importances: list[dict] = field(default_factory=list)
    assign_wall_s: float = 0.0
    assign_rows: int = 0
    # Mean train loss of the steps between two snapshots, one per snapshot: did the warm-up learn?
    train_losses: list[float] = field(default_factory=list)
    _loss: tuple[float, int] = (0.0, 0)

    def on_step_loss(self, step: int, loss: float, rows: int) -> None:
        self._loss = (self._loss[0] + loss * rows, self._loss[1] + rows)

    def on_step_end(self, step: int, total_steps: int) -> None:
        t = len(self.taken) + 1
        if t <= self.snapshots and step >= round(t * total_steps / self.snapshots):
            total, rows = self._loss
            self.train_losses.append(total / rows if rows else float("nan"))
            self._loss = (0.0, 0)
            stats = self.collector.snapshot()
            self.taken.append(score_snapshot(stats, self.criteria, self.context.with_seed(self.seed + t)))
            seen = self.observer.on_warmup_snapshot(self.collector.supernet, self.taken[-1]) if self.observer else None
            if seen is not None:
                self.diagnostics.append({"snapshot": t, "step": step, **seen})
            if self.assign_probe is not None:
                self.importances.append(self.assign_probe.importance(self.collector.supernet))
                seconds, rows = self.assign_probe.take_cost()
                self.assign_wall_s, self.assign_rows = self.assign_wall_s + seconds, self.assign_rows + rows
            self.collector.reset()


def warmup_init(s: SearchSettings) -> str:
    """The warm-up's initialisation: `search.warmup.init`, else the one its rounds start from.

    Under `reinit=keep` the rounds continue from the warm-up's weights, so the warm-up starts from
    `paper` (Eq. 4-5): the `standard` init leaves exact zeros behind ReLU features that never fire
    (adapter `up` columns), which the zeros criterion then reads as prunability.
    """
    if s.warmup.init is not None:
        return s.warmup.init
    return "paper" if s.reinit == "keep" else s.reinit


def run_warmup(supernet, tokenizer, subset, setup: Any, *, criteria: tuple[str, ...], seed: int, run=None,
               observer=None, data=None):
    """Train the supernet on the warm-up subset d, taking T snapshots (Algorithm 1, warm-up).

    `setup`: the search's checked, typed settings (`pruning.setup.SearchSetup`). The supernet starts
    from `warmup_init` (seeded with `seed`), the same initialisation the rounds start from, so the
    assignment S_H is learned on the supernet it is applied to. `observer` (a
    `pruning.observe.SearchObserver`: the instruments) sees each scored snapshot. Under
    `search.warmup.assign=agreement` a probe (`assign_rules.agreement_probe`, from `data`'s
    unused training rows, disjoint from the diagnostics probe) measures every unit's importance
    at each snapshot for the assignment.

    Returns:
        (snapshots as a `warmup.WarmupSnapshots` carrying the rule and the importances, FitResult,
        per-snapshot diagnostics or []).
    """
    s, probes = setup.search, setup.run.probes
    rule = s.warmup.assign
    assign_probe = agreement_probe(probes, data, tokenizer) if needs_importance(rule) else None
    supernet.reinit(supernet.active_ids(), warmup_init(s), generator(seed))
    masked = masked_loss_probe(probes, setup.criteria, data, tokenizer, criteria)  # the masked_loss rows, or None
    collector = StatisticsCollector(supernet, needs_of(criteria), probe=masked)
    taker = SnapshotTaker(collector, criteria, s.warmup.snapshots, setup.criteria, seed, observer=observer,
                          assign_probe=assign_probe)
    try:
        result = train_supernet(supernet, tokenizer, subset, {}, setup.run.train, epochs=s.warmup.epochs,
                                seed=seed, phase="warmup", run=run, callbacks=[collector, taker], lr=s.warmup.lr)
    finally:
        collector.close()
    snapshots = WarmupSnapshots(taker.taken)
    snapshots.assign, snapshots.train_losses = rule, taker.train_losses
    masked_s, masked_rows = masked.take_cost() if masked is not None else (0.0, 0)  # charged to warmup_probes
    snapshots.probe_cost = (taker.assign_wall_s + masked_s, taker.assign_rows + masked_rows)
    diagnostics = setup.run.diagnostics
    snapshots.rule_alternatives = bool(diagnostics.enabled and diagnostics.grid)
    if assign_probe is not None:
        snapshots.importances = taker.importances
        rows = sum(len(b["labels"]) for b in assign_probe.batches)
        snapshots.probe = {"rows": rows, "wall_s": round(taker.assign_wall_s, 3)}
        log.info("warm-up agreement probe: %d rows, %d units x %d snapshots masked in %.1f s", rows,
                 len(taker.importances[0]) if taker.importances else 0, len(taker.importances), taker.assign_wall_s)
    return snapshots, result, taker.diagnostics


def run_round(supernet, tokenizer, train_ds, eval_sets, setup: Any, *, round_index: int, criteria: tuple[str, ...],
              run=None, masked_probe=None):
    """One pruning round: re-initialise, train one epoch (or `search.round_steps`) collecting statistics, score.

    `setup`: the search's checked, typed settings (`pruning.setup.SearchSetup`). Re-initialisation
    (Eq. 4-5 for `reinit=paper`) of the surviving units and the head uses the round's seed, so a
    resumed search re-creates exactly the same round. `masked_probe`: the masked_loss criterion's
    probe (`masked_loss_probe`), needed when `criteria` include it.

    Returns:
        (snapshot of the round's scores, FitResult, the unit statistics).
    """
    s = setup.search
    seed = s.seed + round_index
    if s.reinit != "keep":
        gen = generator(seed)
        supernet.reinit(supernet.active_ids(), s.reinit, gen)
        supernet.reinit_head(gen)
    collector = StatisticsCollector(supernet, needs_of(criteria), probe=masked_probe)
    extra = arms.round_callbacks(setup.arms, supernet)  # e.g. granularity=rank: rank scores in the same pass
    train_ds, epochs = arms.ask(setup.arms, "round_data", train_ds, seed) or (train_ds, 1)  # or search.round_steps
    try:
        result = train_supernet(supernet, tokenizer, train_ds, eval_sets, setup.run.train, epochs=epochs, seed=seed,
                                phase=f"round{round_index}", run=run, callbacks=[collector, *(cb for cbs in extra.values() for cb in cbs)])
        stats = collector.snapshot()
        arms.attach_round_stats(stats, extra)
    finally:
        collector.close()
    snapshot = score_snapshot(stats, criteria, setup.criteria.with_seed(seed))
    return snapshot, result, stats
