"""The search's setup: its config checked once and typed once (torchtune's `setup`, for Algorithm 1).

`validate(cfg)` is the one place below `commands/` that reads the composed config: it runs the
cheap checks (before Hydra creates the run directory; the CLI runs them, and the command reuses
that answer: `commands/search.py`), then unpacks the config into a `SearchSetup`:

- the stage settings (`config.typed.RunSettings`: data, model, train, the loop's SearchSettings,
  the probes, the diagnostics, summary.json's labels);
- the validated `Strategy` (Table 5);
- the criteria's own settings (`CriterionContext`, re-seeded per scoring call with `with_seed`);
- each arm's own settings (`pruning.arms.Arm.configure`: Light-PEFT, backbone pruning);
- the resolved config as plain data, for run.json only (nothing reads a setting from it).

Everything the search does after this reads the setup, never the config.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

from omegaconf import DictConfig, OmegaConf

from prunepeft.config.typed import RunSettings, SearchSettings
from prunepeft.errors import UserError, check_choice
from prunepeft.metrics import check_task_metrics
from prunepeft.pruning import arms, matched
from prunepeft.pruning.criteria import get_criterion
from prunepeft.pruning.criteria.base import CriterionContext
from prunepeft.pruning.partitions import boundaries
from prunepeft.pruning.strategies import Strategy, make_strategy
from prunepeft.train.device import check_train_config

REINIT_SCHEMES = ("paper", "standard", "keep")
FIDELITIES = ("high", "low")
WARMUP_INITS = ("paper", "standard")


@dataclass(frozen=True)
class SearchSetup:
    """Everything a search reads, checked and typed (see the module docstring)."""

    strategy: Strategy
    run: RunSettings
    criteria: CriterionContext  # seed 0: `criteria.with_seed(seed + t)` per snapshot / round
    arms: Mapping[str, Any]  # {arm name: its settings}; pruning.arms.ask / each hand them back
    record: dict  # the resolved config for run.json: data, never read for a setting

    @property
    def search(self) -> SearchSettings:
        assert self.run.search is not None
        return self.run.search


def validate(cfg: DictConfig) -> SearchSetup:
    """Check the search keys (cheap: no model, no data) and return the search's typed setup.

    Raises:
        UserError: a bad value, naming its key and the valid choices.
    """
    strategy = make_strategy(str(cfg.strategy.name), cfg.strategy.criterion, list(cfg.search.criteria),
                             str(cfg.strategy.combine), str(cfg.search.warmup.assign))
    check_task_metrics(cfg.task)
    check_train_config(cfg.train)
    check_choice("search.reinit", str(cfg.search.reinit), REINIT_SCHEMES)
    check_choice("search.fidelity", str(cfg.search.fidelity), FIDELITIES)
    # Each arm checks and types its own settings once (search.granularity, search.round_steps, backbone_prune).
    arm_settings = {arm.name: arm.configure(cfg) for arm in arms.arms()}
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
    # Built here, not first when the warm-up's first snapshot is scored (after run.json exists).
    criteria = CriterionContext.from_search_config(cfg.search, 0)
    boundaries(1, tuple(cfg.search.partition_cuts))
    return SearchSetup(strategy=strategy, run=RunSettings.from_config(cfg), criteria=criteria, arms=arm_settings,
                       record=OmegaConf.to_container(cfg, resolve=True))  # type: ignore[arg-type]
