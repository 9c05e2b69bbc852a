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
"""
from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from prunepeft.run import outputs
from prunepeft.config.typed import DataSettings, SearchSettings
from prunepeft.data import build_task_data, stratified_subset
from prunepeft.errors import UserError, check_choice
from prunepeft.run.io import read_jsonl
from prunepeft.metrics import check_task_metrics
from prunepeft.models import get_family, load_backbone
from prunepeft.peft import Supernet, UnitSizes
from prunepeft.peft.found_config import FoundConfig
from prunepeft.pruning import arms, cost, matched
from prunepeft.pruning.checkpoint import SearchState
from prunepeft.pruning.criteria import get_criterion
from prunepeft.pruning.criteria.base import CriterionContext
from prunepeft.pruning.masked_probe import masked_loss_probe
from prunepeft.pruning.observe import SearchObserver
from prunepeft.pruning.partitions import Partition, boundaries
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
from prunepeft.pruning.strategies import Strategy, combine_round, make_strategy, strategy_of
from prunepeft.run.record import RunDir
from prunepeft.seed import seed_everything
from prunepeft.train.device import check_train_config, resolve_device

log = logging.getLogger(__name__)

REINIT_SCHEMES = ("paper", "standard", "keep")
FIDELITIES = ("high", "low")
WARMUP_INITS = ("paper", "standard")


def build_supernet(cfg: DictConfig, run: RunDir | None = None) -> tuple[Supernet, Any, Any]:
    """Step 1: a fresh backbone (seeded) with every unit of the search space in every layer, and the data.

    With `backbone_prune.enabled` the backbone is first pruned (estimated once, then re-pruned from
    the run's backbone_prune.json; prunepeft.arms.backbone_stage), which needs the run directory.
    """
    seed_everything(int(cfg.seed))
    model, tokenizer = load_backbone(cfg.model, int(cfg.task.num_labels), int(cfg.seed))
    data = build_task_data(DataSettings.from_config(cfg), tokenizer)
    if any(arm.prepare_backbone(model, cfg, data.train, run) for arm in arms.arms()):  # e.g. backbone_prune
        seed_everything(int(cfg.seed))  # the units start as they would on an unpruned backbone
    family = get_family(cfg.model.family)
    sizes = UnitSizes.from_model(cfg.model)
    supernet = Supernet.build(model, family, list(cfg.search_space), sizes, int(model.config.hidden_size))
    return supernet, tokenizer, data


def _warmup_size(s: SearchSettings, train_size: int) -> float:
    """d: `search.warmup.subset` or the task's default, capped at the training set it is drawn from."""
    size = s.warmup.subset
    if size > 1 and size > train_size:
        log.warning("warm-up subset %d > training set %d: using the whole training set", size, train_size)
        return float(train_size)
    return size


def validate(cfg: DictConfig) -> Strategy:
    """The cheap checks of the search keys (the CLI runs them before Hydra creates the run directory)."""
    strategy = make_strategy(str(cfg.strategy.name), cfg.strategy.criterion, list(cfg.search.criteria),
                             str(cfg.strategy.combine), str(cfg.search.warmup.assign))
    check_task_metrics(cfg.task)
    check_train_config(cfg.train)
    check_choice("search.reinit", str(cfg.search.reinit), REINIT_SCHEMES)
    check_choice("search.fidelity", str(cfg.search.fidelity), FIDELITIES)
    arms.call_all("validate", cfg)  # the arms' settings: search.granularity, search.round_steps, backbone_prune
    if cfg.search.warmup.init is not None:
        check_choice("search.warmup.init", str(cfg.search.warmup.init), WARMUP_INITS)
    if cfg.search.retrain_epochs is not None and int(cfg.search.retrain_epochs) < 0:
        raise UserError(f"search.retrain_epochs must be >= 0 (0 = search only), got {cfg.search.retrain_epochs}")
    for name in cfg.search.type_norm_criteria:
        get_criterion(str(name))  # names the valid criteria on a typo
    warmup_lr = cfg.search.warmup.get("lr")
    if warmup_lr is not None and not (math.isfinite(float(warmup_lr)) and float(warmup_lr) > 0):
        raise UserError(f"search.warmup.lr must be a finite rate > 0 (or null = train.lr_peft), got {warmup_lr}")
    if int(cfg.search.k) < 1:
        raise UserError(f"search.k must be >= 1, got {cfg.search.k}")
    for key in ("max_rounds", "warmup.epochs", "warmup.snapshots"):
        value = OmegaConf.select(cfg.search, key)
        if int(value) < 1:
            raise UserError(f"search.{key} must be >= 1, got {value}")
    matched.check_config(strategy, cfg.strategy.from_run)  # random_matched: the hybrid run to match
    if cfg.strategy.from_run and not (strategy.needs_warmup or strategy.kind.matched):
        raise UserError(f"strategy.from_run reuses a hybrid assignment S_H (strategy transfer); it needs "
                        f"strategy=hybrid, got strategy={strategy.name} (random_matched reads it too)")
    # Checked here, not first when the warm-up's first snapshot is scored (after run.json exists).
    CriterionContext.from_search_config(cfg.search, int(cfg.seed))
    boundaries(1, tuple(cfg.search.partition_cuts))
    return strategy


def search(cfg: DictConfig, run: RunDir, settings: SearchSettings | None = None,
           observer: SearchObserver | None = None) -> dict[str, Any]:
    """Run (or resume) a PrunePEFT search in `run` and return its summary.

    `settings`: the search's typed settings, built by the command after it validated `cfg` (without
    them, `cfg` is validated and typed here). `observer`: the instruments watching the search
    (`pruning/observe.py`), or none. `run.json` is written (status running) only after the config,
    model, data and budget checks pass, so a bad input leaves nothing behind but Hydra's own log.
    """
    strategy = validate(cfg) if settings is None else strategy_of(settings)  # validated once, by the command
    s, watch = settings or SearchSettings.from_config(cfg), observer or SearchObserver()
    seed, k = s.seed, s.k
    ckpt = run.file(outputs.CHECKPOINT)
    state = SearchState.load(ckpt)

    # -- 1. Supernet, data, budget B ------------------------------------------------------------
    supernet, tokenizer, data = build_supernet(cfg, run)
    budget, prunable = budget_of(supernet, strategy, s)
    # -- 2. Partitions, fixed once from L ------------------------------------------------------
    partition = Partition(supernet.num_layers, s.partition_cuts)
    warmup_set = stratified_subset(data.train, _warmup_size(s, len(data.train)), seed, "labels", cfg.task.num_labels == 1)
    round_set = warmup_set if s.fidelity == "low" else data.train
    dev = {split: data.evals[split] for split in data.evals}
    round_dev = dev if s.eval_rounds else {}  # the per-round dev metric (Figure 3's curve) is optional
    watch.on_data(data, tokenizer)  # the instruments check their inputs before run.json (search.diagnostics)
    masked = masked_loss_probe(cfg, data, tokenizer, strategy.criteria)  # the masked_loss criterion's rows, or None

    # -- 3. Warm-up: tendencies and the hybrid assignment S_H (or S_H transferred, Table 6) -----
    needs_warmup = prunable and strategy.needs_warmup
    assignment = transferred_assignment(s, supernet, partition) if needs_warmup else None
    matched.prune_like_source(strategy, s, supernet)  # random_matched: the hybrid's unit counts per type
    # Every input a user can get wrong has been checked: only now does the run directory get written.
    run.start("search", seed, config_dict(cfg), str(resolve_device(cfg.train.device)), data.identity)
    cost.add(state, "setup", time.time() - run.started)  # backbone, data, supernet: paid by every invocation
    if needs_warmup and assignment is None:
        assignment = warm_up(supernet, tokenizer, warmup_set, cfg, s, run, state, ckpt, partition, strategy, watch,
                             data)
    watch.on_assignment(partition, assignment, k)

    # -- 4. Iterative pruning rounds (after a resume: from the checkpoint) ----------------------
    counts = resume(run, state, ckpt, supernet)  # the accounting: counted once per round (record_round)
    while prunable and counts.peft > budget and state.rounds_done < s.max_rounds:
        started, r, active = time.time(), state.rounds_done + 1, supernet.active_ids()
        snapshot, fitted, stats = run_round(supernet, tokenizer, round_set, round_dev, cfg, round_index=r,
                                            criteria=strategy.criteria, run=run, masked_probe=masked)
        combined = combine_round(strategy, snapshot, partition, assignment, k)
        removed, last = choose_removals(counts, combined.p, s, r, budget)
        seen = watch.on_round(supernet, snapshot, combined.p, removed, fitted, seed + r)  # instruments only
        removed = remove_units(supernet, removed, stats, cfg, budget, last, seed + r, run)
        outcome = RoundOutcome(r, active, removed, last, snapshot, combined, fitted, stats, started, seen)
        counts = record_round(run, state, ckpt, supernet, s, budget, outcome, probes=(watch, masked))
    if prunable and s.fill_budget:
        fill_budget(supernet, state.removed, budget)
    found = FoundConfig.from_supernet(supernet, cfg.model)
    found.save(run.file(outputs.FOUND_CONFIG))

    # -- 5. Retrain the found configuration from fresh units on the full training set ----------
    return retrain(cfg, s, run, strategy, found, supernet, state, data, dev)


def config_dict(cfg: DictConfig) -> dict:
    """The resolved config as plain data (for run.json)."""
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]


def rounds_log(run_dir: Path) -> list[dict]:
    """The rounds recorded so far (for reports and the demo's printout)."""
    return read_jsonl(Path(run_dir) / outputs.ROUNDS)
