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
`selection`, `warmup` (maths), `strategies` (Table 5), `checkpoint` (resume), `budget`.
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from prunepeft.data import build_task_data, stratified_subset
from prunepeft.errors import UserError, check_choice
from prunepeft.io import atomic_write_text, read_json, read_jsonl
from prunepeft.metrics import check_task_metrics
from prunepeft.models import get_family, load_backbone
from prunepeft.peft import Supernet, UnitSizes, count_parameters, parse_unit_key, unit_key
from prunepeft.peft.found_config import HEAD_FILE, UNITS_FILE, FoundConfig, build_from_found
from prunepeft.pruning.budget import budget_params, check_budget
from prunepeft.pruning.checkpoint import SearchState, restore_weights, supernet_tensors
from prunepeft.pruning.criteria import get_criterion
from prunepeft.pruning.criteria.base import CriterionContext
from prunepeft.pruning.partitions import Partition, boundaries
from prunepeft.pruning.diagnostics import Probe
from prunepeft.pruning.phases import run_round, run_warmup, train_supernet
from prunepeft.pruning.rank_stage import granularity, prune_ranks
from prunepeft.pruning.rounds import (
    RoundOutcome,
    SimulatedCrash,
    choose_removals,
    fill_budget,
    record_round,
    record_warmup,
)
from prunepeft.pruning.strategies import Strategy, combine_round, make_strategy
from prunepeft.pruning.warmup import load_assignment, summarise_warmup, unit_assignment
from prunepeft.runs import RunDir
from prunepeft.seed import seed_everything
from prunepeft.train.device import check_train_config, resolve_device
from prunepeft.train.loop import FitResult

log = logging.getLogger(__name__)

REINIT_SCHEMES = ("paper", "standard", "keep")
FIDELITIES = ("high", "low")
WARMUP_INITS = ("paper", "standard")


def _build_supernet(cfg: DictConfig) -> tuple[Supernet, Any]:
    """Step 1: a fresh backbone (seeded) with every unit of the search space in every layer."""
    seed_everything(int(cfg.seed))
    model, tokenizer = load_backbone(cfg.model, int(cfg.task.num_labels), int(cfg.seed))
    family = get_family(cfg.model.family)
    sizes = UnitSizes.from_model(cfg.model)
    supernet = Supernet.build(model, family, list(cfg.search_space), sizes, int(model.config.hidden_size))
    return supernet, tokenizer


def _warmup_size(cfg: DictConfig, train_size: int) -> float:
    """d: `search.warmup.subset` or the task's default, capped at the training set it is drawn from."""
    size = float(cfg.search.warmup.subset if cfg.search.warmup.subset is not None else cfg.task.warmup_subset)
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
    granularity(cfg)  # unit | rank
    if cfg.search.warmup.init is not None:
        check_choice("search.warmup.init", str(cfg.search.warmup.init), WARMUP_INITS)
    if cfg.search.retrain_epochs is not None and int(cfg.search.retrain_epochs) < 0:
        raise UserError(f"search.retrain_epochs must be >= 0 (0 = search only), got {cfg.search.retrain_epochs}")
    for name in cfg.search.type_norm_criteria:
        get_criterion(str(name))  # names the valid criteria on a typo
    if int(cfg.search.k) < 1:
        raise UserError(f"search.k must be >= 1, got {cfg.search.k}")
    for key in ("max_rounds", "warmup.epochs", "warmup.snapshots"):
        value = OmegaConf.select(cfg.search, key)
        if int(value) < 1:
            raise UserError(f"search.{key} must be >= 1, got {value}")
    if cfg.strategy.from_run and not strategy.needs_warmup:
        raise UserError(f"strategy.from_run reuses a hybrid assignment S_H (strategy transfer); it needs "
                        f"strategy=hybrid, got strategy={strategy.name}")
    # Checked here, not first when the warm-up's first snapshot is scored (after run.json exists).
    CriterionContext.from_search_config(cfg.search, int(cfg.seed))
    boundaries(1, tuple(cfg.search.partition_cuts))
    return strategy


def search(cfg: DictConfig, run: RunDir) -> dict[str, Any]:
    """Run (or resume) a PrunePEFT search in `run` and return its summary.

    `run.json` is written (status running) only after the config, model, data and budget checks
    pass, so a bad input leaves nothing behind but Hydra's own log.
    """
    strategy = validate(cfg)
    seed, k = int(cfg.seed), int(cfg.search.k)
    ckpt = run.file("checkpoint")
    state = SearchState.load(ckpt)

    # -- 1. Supernet, data, budget B ------------------------------------------------------------
    supernet, tokenizer = _build_supernet(cfg)
    data = build_task_data(cfg, tokenizer)
    report = count_parameters(supernet)
    budget = budget_params(cfg.budget.percent, cfg.budget.params, report.base)
    prunable = strategy.prunes and check_budget(budget, report.per_unit)
    if strategy.prunes and not prunable:
        log.warning("nothing to prune: the whole supernet (%d params) is within the budget (%d)", report.peft, budget)
    # -- 2. Partitions, fixed once from L ------------------------------------------------------
    partition = Partition(supernet.num_layers, tuple(cfg.search.partition_cuts))
    warmup_set = stratified_subset(data.train, _warmup_size(cfg, len(data.train)), seed, "labels", cfg.task.num_labels == 1)
    round_set = warmup_set if cfg.search.fidelity == "low" else data.train
    dev = {split: data.evals[split] for split in data.evals}
    probe = Probe.build(cfg, data, tokenizer)  # ground truth for each decision (search.diagnostics)

    # -- 3. Warm-up: tendencies and the hybrid assignment S_H ----------------------------------
    assignment = None
    if prunable and strategy.needs_warmup and cfg.strategy.from_run:  # strategy transfer (Table 6)
        source = Path(str(cfg.strategy.from_run)) / "warmup.json"
        if not source.exists():
            raise UserError(f"strategy.from_run: {source} not found (a finished hybrid search writes it)")
        assignment = load_assignment(read_json(source), str(source))
        unit_assignment(supernet.active_ids(), partition, assignment)  # every key covered, before run.json
    # Every input a user can get wrong has been checked: only now does the run directory get written.
    run.start("search", seed, config_dict(cfg), str(resolve_device(cfg.train.device)))
    if prunable and strategy.needs_warmup and assignment is None:
        if state.warmup_done:
            assignment = load_assignment(read_json(run.file("warmup.json")))
        else:
            started = time.time()
            snapshots, fitted, diagnostics = run_warmup(supernet, tokenizer, warmup_set, cfg, seed=seed, run=run,
                                                        criteria=strategy.criteria, probe=probe, data=data)
            result = summarise_warmup(snapshots, partition, k, seed, strategy.criteria)
            assignment = result.assignment
            record_warmup(run, result, k, fitted, diagnostics)
            state.warmup_done, state.examples = True, state.examples + fitted.examples_seen
            state.wall_s += time.time() - started
            # The warm-up-trained weights: round 1 starts from them under reinit=keep, also after a resume.
            state.save(ckpt, supernet_tensors(supernet))
            if cfg.debug.crash_after_round is not None and int(cfg.debug.crash_after_round) == 0:
                raise SimulatedCrash("debug.crash_after_round=0 (after the warm-up)")

    # -- 4. Iterative pruning rounds (resume: replay the removals, restore the weights) ---------
    _drop_unfinished_rounds(run, state.rounds_done)
    for key in state.removed:
        supernet.deactivate(parse_unit_key(key))
    if state.rounds_done or state.warmup_done:
        restore_weights(ckpt, supernet)  # matters for reinit=keep; other schemes re-initialise anyway
    while prunable and count_parameters(supernet).peft > budget and state.rounds_done < int(cfg.search.max_rounds):
        started, r, active = time.time(), state.rounds_done + 1, supernet.active_ids()
        snapshot, fitted, stats = run_round(supernet, tokenizer, round_set, dev, cfg, round_index=r,
                                            criteria=strategy.criteria, run=run)
        combined = combine_round(strategy, snapshot, partition, assignment, k)
        removed, last = choose_removals(supernet, combined.p, cfg, r, budget)
        diagnostics = probe and probe.diagnose(supernet, snapshot, p=combined.p, removed=removed, seed=seed + r,
                                               train_loss=fitted.history[-1]["train_loss"], grid=(partition, assignment, k))
        for uid in removed:
            supernet.deactivate(uid)
        removed = removed + prune_ranks(supernet, stats, cfg, budget, last, seed + r, run)  # granularity=rank
        record_round(run, state, ckpt, supernet, cfg, budget,
                     RoundOutcome(r, active, removed, last, snapshot, combined, fitted, stats, started, diagnostics))
    if prunable and cfg.search.fill_budget:
        fill_budget(supernet, state.removed, budget)

    found = FoundConfig.from_supernet(supernet, cfg.model)
    found.save(run.file("found_config.json"))

    # -- 5. Retrain the found configuration from fresh units on the full training set ----------
    epochs = int(cfg.search.retrain_epochs if cfg.search.retrain_epochs is not None else cfg.train.epochs)
    if epochs == 0:  # search only (settings studies): the found configuration is the result
        return _summary(cfg, strategy.name, found, count_parameters(supernet), FitResult([], {}), state,
                        len(data.train), epochs)
    seed_everything(seed)
    model, tokenizer = load_backbone(cfg.model, int(cfg.task.num_labels), seed)
    final = build_from_found(model, get_family(cfg.model.family), found, int(model.config.hidden_size))
    retrained = train_supernet(final, tokenizer, data.train, dev, cfg, epochs=epochs, seed=seed,
                               phase="retrain", run=run)
    final.save_units(run.file(UNITS_FILE))  # for `prunepeft export` and reuse
    final.save_head(run.file(HEAD_FILE))
    return _summary(cfg, strategy.name, found, count_parameters(final), retrained, state, len(data.train), epochs)


def _summary(cfg, strategy: str, found, params, retrained, state: SearchState, train_size: int, epochs: int) -> dict:
    """summary.json: the headline is the LAST retrain epoch (docs/method.md#retrain)."""
    split = str(cfg.task.eval_splits[0])
    metric = str(cfg.task.primary_metric)
    return {
        "command": "search", "task": str(cfg.task.name), "model": str(cfg.model.name), "method": "prunepeft",
        "strategy": strategy, "criterion": cfg.strategy.criterion if strategy == "single" else None,
        "combine": str(cfg.strategy.combine), "fidelity": str(cfg.search.fidelity), "seed": int(cfg.seed),
        "metrics": retrained.last, "primary": {"split": split, "metric": metric,
                                               "value": retrained.last.get(split, {}).get(metric)},
        "best_epoch": retrained.best_epoch, "best_metrics": retrained.best,
        "params": {"peft": params.peft, "head": params.head, "base": params.base, "percent": params.percent},
        "found": {"units": [unit_key(u) for u in found.units], "num_units": len(found.units)},
        "search": {"wall_s": round(state.wall_s, 2), "rounds": state.rounds_done, "examples": state.examples,
                   # search cost in passes over the training set D (Table 4)
                   "epoch_equivalents": round(state.examples / max(1, train_size), 4)},
        "train": {"epochs": epochs, "wall_s": retrained.wall_s, "examples_seen": retrained.examples_seen},
        "lr": float(cfg.train.lr_peft),
        "transfer": {"kind": "strategy", "from_run": str(cfg.strategy.from_run)} if cfg.strategy.from_run else None,
        "history": retrained.history,
    }


def _drop_unfinished_rounds(run: RunDir, rounds_done: int) -> None:
    """Keep only finished rounds in rounds.jsonl (a crash may leave a round logged, not saved)."""
    rows = read_jsonl(run.file("rounds.jsonl"))
    if len(rows) != rounds_done:
        kept = "".join(json.dumps(r) + "\n" for r in rows if r["round"] <= rounds_done)
        atomic_write_text(run.file("rounds.jsonl"), kept)


def config_dict(cfg: DictConfig) -> dict:
    """The resolved config as plain data (for run.json)."""
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]


def rounds_log(run_dir: Path) -> list[dict]:
    """The rounds recorded so far (for reports and the demo's printout)."""
    return read_jsonl(Path(run_dir) / "rounds.jsonl")
