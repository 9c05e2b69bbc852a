"""Algorithm 1 of PrunePEFT (arXiv 2506.07587), top to bottom.

    1. build the supernet: every candidate unit in every layer   (docs/method.md#supernet-and-units)
    2. partition the layers into 4 spindle blocks                  (docs/method.md#partitions)
    3. warm-up on a stratified subset d: T snapshots -> tendencies -> S_H  (docs/method.md#warm-up)
    4. rounds: re-initialise, train one epoch collecting statistics, score every criterion
       (Table 1), combine with Eq. (1), remove the top-k (the last round: down to the budget B)
       (docs/method.md#rounds)
    5. retrain the found configuration from fresh units on the full training set
       (docs/method.md#retrain)

The mechanics live in small modules: `phases` (training with statistics), `scoring`, `combine`,
`selection`, `warmup` (maths), `strategies` (Table 5), `checkpoint` (resume), `budget`; the
bookkeeping around them in `stages` (warm-up, resume, retrain + summary) and `rounds` (one round).
The settings come checked and typed from `setup` (the command builds them once): nothing here reads
the config.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from prunepeft.run import outputs
from prunepeft.config.typed import SearchSettings
from prunepeft.data import build_task_data, stratified_subset
from prunepeft.run.io import read_jsonl
from prunepeft.models import get_family, load_backbone, start_regression_head
from prunepeft.peft import Supernet, UnitSizes
from prunepeft.peft.found_config import FoundConfig
from prunepeft.pruning import arms, cost, matched
from prunepeft.pruning.checkpoint import SearchState
from prunepeft.pruning.masked_probe import masked_loss_probe
from prunepeft.pruning.observe import SearchObserver
from prunepeft.pruning.partitions import Partition
from prunepeft.pruning.phases import run_round
from prunepeft.pruning.rounds import (  # noqa: F401  (SimulatedCrash: tests import it from here)
    RoundOutcome,
    SimulatedCrash,
    choose_removals,
    fill_budget,
    record_round,
    remove_units,
)
from prunepeft.pruning.stages import budget_of, resume, retrain, transferred_assignment, warm_up
from prunepeft.pruning.setup import SearchSetup, validate  # noqa: F401  (validate: callers import it from here)
from prunepeft.pruning.strategies import combine_round
from prunepeft.run.record import RunDir
from prunepeft.seed import seed_everything
from prunepeft.train.device import resolve_device

log = logging.getLogger(__name__)


def build_supernet(setup: SearchSetup, run: RunDir | None = None) -> tuple[Supernet, Any, Any]:
    """Step 1: a fresh backbone (seeded) with every unit of the search space in every layer, and the data.

    With `backbone_prune.enabled` the backbone is first pruned (estimated once, then re-pruned from
    the run's backbone_prune.json; prunepeft.arms.backbone_stage), which needs the run directory.
    """
    settings = setup.run
    seed, m = settings.seed, settings.model
    seed_everything(seed)
    model, tokenizer = load_backbone(m.model, m.num_labels, seed)
    data = build_task_data(settings.data, tokenizer)
    start_regression_head(model, get_family(m.family), data.train["labels"], settings.train.loop.regression_head_bias)
    if any(arms.each(setup.arms, "prepare_backbone", settings, model, data.train, run)):  # e.g. backbone_prune
        seed_everything(seed)  # the units start as they would on an unpruned backbone
    supernet = Supernet.build(model, get_family(m.family), list(m.search_space), UnitSizes.from_model(m.model),
                              int(model.config.hidden_size))
    return supernet, tokenizer, data


def _warmup_size(s: SearchSettings, train_size: int) -> float:
    """d: `search.warmup.subset` or the task's default, capped at the training set it is drawn from."""
    size = s.warmup.subset
    if size > 1 and size > train_size:
        log.warning("warm-up subset %d > training set %d: using the whole training set", size, train_size)
        return float(train_size)
    return size


def search(setup: SearchSetup, run: RunDir, observer: SearchObserver | None = None) -> dict[str, Any]:
    """Run (or resume) a PrunePEFT search in `run` and return its summary.

    `setup`: the search's settings, checked and typed once by the command (`pruning.setup.validate`).
    `observer`: the instruments watching the search (`pruning/observe.py`), or none. `run.json` is
    written (status running) only after the config, model, data and budget checks pass, so a bad
    input leaves nothing behind but Hydra's own log.
    """
    s, strategy, watch = setup.search, setup.strategy, observer or SearchObserver()
    seed, k = s.seed, s.k
    ckpt = run.file(outputs.CHECKPOINT)
    state = SearchState.load(ckpt)

    # -- 1. Supernet, data, budget B ------------------------------------------------------------
    supernet, tokenizer, data = build_supernet(setup, run)
    budget, prunable = budget_of(supernet, strategy, s)
    # -- 2. Partitions, fixed once from L ------------------------------------------------------
    partition = Partition(supernet.num_layers, s.partition_cuts)
    regression = setup.run.model.num_labels == 1
    warmup_set = stratified_subset(data.train, _warmup_size(s, len(data.train)), seed, "labels", regression)
    round_set = warmup_set if s.fidelity == "low" else data.train
    dev = {split: data.evals[split] for split in data.evals}
    round_dev = dev if s.eval_rounds else {}  # the per-round dev metric (Figure 3's curve) is optional
    watch.on_data(data, tokenizer)  # the instruments check their inputs before run.json (search.diagnostics)
    masked = masked_loss_probe(setup.run.probes, setup.criteria, data, tokenizer, strategy.criteria)  # or None

    # -- 3. Warm-up: tendencies and the hybrid assignment S_H (or S_H transferred, Table 6) -----
    needs_warmup = prunable and strategy.needs_warmup
    assignment = transferred_assignment(s, supernet, partition) if needs_warmup else None
    matched.prune_like_source(strategy, s, supernet)  # random_matched: the hybrid's unit counts per type
    # Every input a user can get wrong has been checked: only now does the run directory get written.
    run.start("search", seed, setup.record, str(resolve_device(setup.run.train.loop.device)), data.identity)
    cost.add(state, "setup", time.time() - run.started)  # backbone, data, supernet: paid by every invocation
    if needs_warmup and assignment is None:
        assignment = warm_up(supernet, tokenizer, warmup_set, setup, run, state, ckpt, partition, watch, data)
    watch.on_assignment(partition, assignment, k)

    # -- 4. Iterative pruning rounds (after a resume: from the checkpoint) ----------------------
    counts = resume(run, state, ckpt, supernet)  # the accounting: counted once per round (record_round)
    while prunable and counts.peft > budget and state.rounds_done < s.max_rounds:
        started, r, active = time.time(), state.rounds_done + 1, supernet.active_ids()
        snapshot, fitted, stats = run_round(supernet, tokenizer, round_set, round_dev, setup, round_index=r,
                                            criteria=strategy.criteria, run=run, masked_probe=masked)
        combined = combine_round(strategy, snapshot, partition, assignment, k)
        removed, last = choose_removals(counts, combined.p, s, r, budget, setup.arms)
        seen = watch.on_round(supernet, snapshot, combined.p, removed, fitted, seed + r)  # instruments only
        removed = remove_units(supernet, removed, stats, setup.arms, budget, last, seed + r, run)
        outcome = RoundOutcome(r, active, removed, last, snapshot, combined, fitted, stats, started, seen)
        counts = record_round(run, state, ckpt, supernet, s, budget, outcome, probes=(watch, masked))
    if prunable and s.fill_budget:
        fill_budget(supernet, state.removed, budget)
    found = FoundConfig.from_supernet(supernet, setup.run.model.model)
    found.save(run.file(outputs.FOUND_CONFIG))

    # -- 5. Retrain the found configuration from fresh units on the full training set ----------
    return retrain(setup, run, found, supernet, state, data, dev)


def rounds_log(run_dir: Path) -> list[dict]:
    """The rounds recorded so far (for reports and the demo's printout)."""
    return read_jsonl(Path(run_dir) / outputs.ROUNDS)
