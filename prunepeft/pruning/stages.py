"""The stages of Algorithm 1 around the rounds, with their bookkeeping, so `search()` reads as the
algorithm (docs/architecture.md#the-search-step-by-step):

- `budget_of`: B and whether there is anything to prune (step 1);
- `transferred_assignment`: S_H from another run's `warmup.json` (strategy transfer, Table 6),
  checked before `run.json` exists;
- `warm_up`: step 3 (or, on a resume, S_H read back from `warmup.json`), its record, the
  checkpoint after it and the debug crash hook;
- `resume`: before the rounds, drop unfinished rows of `rounds.jsonl`, replay the removals and
  restore the checkpointed weights;
- `retrain`: step 5, saving the retrained units and head, and the run's summary (fresh units, or
  with `search.retrain_init=warm` the search's trained ones: `light_peft.start_retrain`).
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any, Optional

from prunepeft.run import outputs
from prunepeft.config.typed import SearchSettings
from prunepeft.errors import UserError
from prunepeft.run.io import atomic_write_text, read_json, read_jsonl
from prunepeft.models import get_family, load_backbone, start_regression_head
from prunepeft.peft import count_parameters, parse_unit_key, unit_key
from prunepeft.peft.found_config import FoundConfig, build_from_found
from prunepeft.peft.weights import save_trained
from prunepeft.pruning import arms, cost
from prunepeft.pruning.budget import budget_params, check_budget
from prunepeft.pruning.checkpoint import SearchState, restore_weights, supernet_tensors
from prunepeft.pruning.partitions import Partition
from prunepeft.pruning.phases import run_warmup, train_supernet
from prunepeft.pruning.rounds import SimulatedCrash, record_warmup
from prunepeft.pruning.warmup import (
    chance_loss,
    learning_record,
    load_assignment,
    summarise_warmup,
    unit_assignment,
)
from prunepeft.seed import seed_everything
from prunepeft.train.loop import FitResult

log = logging.getLogger(__name__)


def budget_of(supernet: Any, strategy: Any, s: Any) -> tuple[int, bool]:
    """B in parameters, and whether the search prunes at all (a strategy that prunes, a supernet above B).

    `s`: anything with `budget.percent` / `budget.params` (SearchSettings, or the config itself).
    """
    report = count_parameters(supernet)
    # B is a share of the UNPRUNED base, also when the backbone was pruned early (backbone_stage).
    budget = budget_params(s.budget.percent, s.budget.params,
                           int(getattr(supernet.model, arms.BASE_BEFORE, report.base)))
    prunable = strategy.prunes and check_budget(budget, report.per_unit)
    if strategy.prunes and not prunable:
        log.warning("nothing to prune: the whole supernet (%d params) is within the budget (%d)", report.peft, budget)
    return budget, prunable


def transferred_assignment(s: SearchSettings, supernet: Any, partition: Partition) -> Optional[dict]:
    """S_H of `strategy.from_run` (strategy transfer, Table 6), or None when there is none to reuse.

    Every partition key of this supernet must be covered; checked before `run.json` is written.
    """
    if not s.strategy.from_run:
        return None
    source = Path(s.strategy.from_run) / outputs.WARMUP
    if not source.exists():
        raise UserError(f"strategy.from_run: {source} not found (a finished hybrid search writes it)")
    assignment = load_assignment(read_json(source), str(source))
    unit_assignment(supernet.active_ids(), partition, assignment)  # every key covered, before run.json
    return assignment


def warm_up(supernet: Any, tokenizer: Any, warmup_set: Any, setup: Any, run: Any, state: SearchState, ckpt: Path,
            partition: Partition, observer: Any, data: Any) -> dict:
    """Step 3: T snapshots on d -> tendencies -> S_H, recorded in warmup.json and checkpointed.

    On a resume after the warm-up, S_H is read back from warmup.json instead. `setup`: the search's
    checked, typed settings (`pruning.setup.SearchSetup`).
    """
    if state.warmup_done:
        return load_assignment(read_json(run.file(outputs.WARMUP)))
    s, strategy = setup.search, setup.strategy
    seed, k = s.seed, s.k
    started = time.time()
    snapshots, fitted, diagnostics = run_warmup(supernet, tokenizer, warmup_set, setup, seed=seed, run=run,
                                                criteria=strategy.criteria, observer=observer, data=data)
    result = summarise_warmup(snapshots, partition, k, seed, strategy.criteria)
    regression = setup.run.model.num_labels == 1
    learning = learning_record(snapshots.train_losses, chance_loss(warmup_set["labels"], regression),
                               s.warmup.learned_margin, regression)
    record_warmup(run, result, k, fitted, diagnostics, learning)
    state.warmup_done, state.examples = True, state.examples + fitted.examples_seen
    state.wall_s += time.time() - started
    # The probes ran inside the warm-up's training loop: their time is taken out of warmup_train.
    diag_s, diag_rows = observer.take_cost()
    assign_s, assign_rows = snapshots.probe_cost
    cost.add(state, "warmup_probes", diag_s + assign_s, diag_rows + assign_rows)
    cost.add(state, "warmup_train", time.time() - started - diag_s - assign_s)
    # The warm-up-trained weights: round 1 starts from them under reinit=keep, also after a resume.
    state.save(ckpt, supernet_tensors(supernet))
    if s.crash_after_round == 0:
        raise SimulatedCrash("debug.crash_after_round=0 (after the warm-up)")
    return result.assignment


def resume(run: Any, state: SearchState, ckpt: Path, supernet: Any) -> Any:
    """Bring a fresh supernet to the checkpoint: finished rounds only, removals replayed, weights restored.

    Returns the accounting of the supernet the rounds start from (`count_parameters`).
    """
    drop_unfinished_rounds(run, state.rounds_done)
    for key in state.removed:
        supernet.deactivate(parse_unit_key(key))
    if state.rounds_done or state.warmup_done:
        restore_weights(ckpt, supernet)  # matters for reinit=keep; other schemes re-initialise anyway
    return count_parameters(supernet)


def drop_unfinished_rounds(run: Any, rounds_done: int) -> None:
    """Keep only finished rounds in rounds.jsonl (a crash may leave a round logged, not saved)."""
    rows = read_jsonl(run.file(outputs.ROUNDS))
    if len(rows) != rounds_done:
        kept = "".join(json.dumps(r) + "\n" for r in rows if r["round"] <= rounds_done)
        atomic_write_text(run.file(outputs.ROUNDS), kept)


def retrain(setup: Any, run: Any, found: FoundConfig, supernet: Any, state: SearchState, data: Any,
            dev: dict) -> dict[str, Any]:
    """Step 5: the found configuration on the full training set; returns the summary.

    Its units and head start fresh (`search.retrain_init=fresh`, Algorithm 1) or from the search's
    trained ones sliced to their kept ranks (`warm`, Light-PEFT's stage 2).

    `search.retrain_epochs=0` is search only (settings studies): the found configuration is the result.
    """
    s, model_settings = setup.search, setup.run.model
    epochs, started = s.retrain_epochs, time.time()
    if epochs == 0:
        params = count_parameters(supernet)
        return summary(setup, found, params, FitResult([], {}), state, len(data.train), epochs,
                       arms.ask(setup.arms, "summary_fields", supernet.model, params.base, run.path), run)
    seed = s.seed
    seed_everything(seed)
    model, tokenizer = load_backbone(model_settings.model, model_settings.num_labels, seed)
    family = get_family(model_settings.family)
    # a fresh head, as the baseline's (a warm retrain then copies the search's trained head over it)
    start_regression_head(model, family, data.train["labels"], setup.run.train.loop.regression_head_bias)
    arms.call_all("on_backbone_loaded", model, family, run.path)  # re-pruned as the search's
    final = build_from_found(model, family, found, int(model.config.hidden_size))
    arms.call_all("start_retrain", final, supernet, s.retrain_init)  # fresh | warm (Light-PEFT's stage 2)
    retrained = train_supernet(final, tokenizer, data.train, dev, setup.run.train, epochs=epochs, seed=seed,
                               phase="retrain", run=run)
    save_trained(final, run.path)  # units + head: for `prunepeft export`, load_run and reuse
    params = count_parameters(final)
    cost.add(state, "retrain", time.time() - started)
    return summary(setup, found, params, retrained, state, len(data.train), epochs,
                   arms.ask(setup.arms, "summary_fields", final.model, params.base, run.path), run)


def summary(setup: Any, found, params, retrained, state: SearchState, train_size: int, epochs: int,
            backbone: Optional[dict] = None, run: Any = None) -> dict:
    """summary.json (prunepeft.run.outputs.summary): the headline is the LAST retrain epoch (docs/method.md#retrain);
    `cost` is the wall-clock by phase and the examples trained and forward-only (prunepeft.pruning.cost)."""
    s, strategy = setup.search, setup.strategy
    return outputs.summary(
        "search", setup.run.labels, "prunepeft", retrained,
        params={"peft": params.peft, "head": params.head, "base": params.base, "percent": params.percent},
        train={"epochs": epochs, "wall_s": retrained.wall_s, "examples_seen": retrained.examples_seen,
               "init": s.retrain_init},  # search.retrain_init: fresh | warm
        strategy=strategy.name, criterion=s.strategy.criterion if strategy.kind.criteria == "one" else None,
        combine=s.strategy.combine, fidelity=s.fidelity,
        found={"units": [unit_key(u) for u in found.units], "num_units": len(found.units)},
        search={"wall_s": round(state.wall_s, 2), "rounds": state.rounds_done, "examples": state.examples,
                # search cost in passes over the training set D (Table 4)
                "epoch_equivalents": round(state.examples / max(1, train_size), 4)},
        cost=cost.summary(state, run.started if run is not None else time.time(), retrained, train_size),
        transfer={"kind": "strategy", "from_run": s.strategy.from_run} if s.strategy.from_run and strategy.needs_warmup else None,
        **({"matched": {"from_run": s.strategy.from_run}} if strategy.kind.matched else {}),  # pruning/matched.py
        **({"backbone": backbone} if backbone else {}),  # early backbone pruning (backbone_stage)
    )
