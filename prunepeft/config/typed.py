"""The search loop's settings as typed, frozen objects, built once at the command boundary.

Hydra hands a command a `DictConfig` (checked against `schema.py`); reading it deep inside the
search means `int(cfg.search.k)` in every helper and defaults resolved in several places.
`SearchSettings.from_config(cfg)` turns the keys the search loop decides with (seed, `search.*`,
`strategy.*`, `budget.*`, `debug.crash_after_round`) into plain Python values once, with the
defaults that depend on other keys resolved (the warm-up subset, the retrain epochs). The
command builds it (`commands/search.py`) after the config passed its checks, and `search()`,
`pruning/stages.py` and `pruning/rounds.py` read it instead of the config.

The `DictConfig` still goes where the loop hands the config to other layers: the training loop
(`train.*`, `task.*`), the model loaders (`model.*`), the criteria's context, the rank and
backbone stages and the diagnostics probe (their own `search.*` sections), and `run.json`.

This module imports nothing from the package (any layer may use it).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional


@dataclass(frozen=True)
class WarmupSettings:
    """`search.warmup.*`: the warm-up of Algorithm 1 (docs/method.md#warm-up)."""

    subset: float  # d: rows (> 1) or a share of the training set (<= 1); `null` resolved to task.warmup_subset
    init: Optional[str]  # None: the rounds' own initialisation (pruning.phases.warmup_init)
    epochs: int
    snapshots: int  # T
    assign: str  # the assignment rule (tendency | ...)
    lr: Optional[float] = None  # the warm-up's rate for units and head; None = train.lr_peft / lr_head
    learned_margin: float = 0.02  # `search.diagnostics.learned_margin`: below chance by this = learned


@dataclass(frozen=True)
class StrategySettings:
    """`strategy.*`: which criteria decide and how (Table 5)."""

    name: str
    criterion: Optional[str]  # `single`'s criterion
    combine: str
    from_run: Optional[str]  # strategy transfer: the run whose S_H is reused (Table 6)


@dataclass(frozen=True)
class BudgetSettings:
    """`budget.*`: B as a percentage of the base model, or in parameters (params wins)."""

    percent: Optional[float]
    params: Optional[int]


@dataclass(frozen=True)
class SearchSettings:
    """What the search loop reads, typed (docs/architecture.md#the-search-step-by-step)."""

    seed: int
    k: int  # units removed per round
    max_rounds: int  # the last allowed round removes down to B
    reinit: str  # paper | standard | keep
    fidelity: str  # high (rounds on D) | low (rounds on d)
    partition_cuts: tuple[float, ...]
    criteria: tuple[str, ...]
    granularity: str  # unit | rank
    fill_budget: bool
    retrain_epochs: int  # `search.retrain_epochs`, else `train.epochs`; 0 = search only
    warmup: WarmupSettings
    strategy: StrategySettings
    budget: BudgetSettings
    crash_after_round: Optional[int]  # debug: stop after this round (0 = after the warm-up)
    rank_ratio: float = 0.0  # granularity=rank: units stop at <= B / (1 - rank_ratio); null = 0
    retrain_init: str = "fresh"  # fresh | warm (the search's trained units and head; null = fresh)
    eval_rounds: bool = True  # `search.eval_rounds`: dev metric after each round

    @classmethod
    def from_config(cls, cfg: Any) -> "SearchSettings":
        """The settings of a composed search config (already checked by `pruning.search.validate`)."""
        search, warmup = cfg.search, cfg.search.warmup
        crash = cfg.debug.crash_after_round if cfg.get("debug") is not None else None
        return cls(
            seed=int(cfg.seed), k=int(search.k), max_rounds=int(search.max_rounds), reinit=str(search.reinit),
            fidelity=str(search.fidelity), partition_cuts=tuple(float(c) for c in search.partition_cuts),
            criteria=tuple(str(c) for c in search.criteria), granularity=str(search.get("granularity", "unit")),
            fill_budget=bool(search.fill_budget),
            retrain_epochs=int(search.retrain_epochs if search.retrain_epochs is not None else cfg.train.epochs),
            warmup=WarmupSettings(
                subset=float(warmup.subset if warmup.subset is not None else cfg.task.warmup_subset),
                init=None if warmup.init is None else str(warmup.init), epochs=int(warmup.epochs),
                snapshots=int(warmup.snapshots), assign=str(warmup.get("assign", "tendency")),
                lr=None if warmup.get("lr") is None else float(warmup.lr),
                learned_margin=float(search.diagnostics.learned_margin)),
            strategy=StrategySettings(
                name=str(cfg.strategy.name), criterion=None if cfg.strategy.criterion is None else str(cfg.strategy.criterion),
                combine=str(cfg.strategy.combine), from_run=str(cfg.strategy.from_run) if cfg.strategy.from_run else None),
            budget=BudgetSettings(percent=None if cfg.budget.percent is None else float(cfg.budget.percent),
                                  params=None if cfg.budget.params is None else int(cfg.budget.params)),
            crash_after_round=None if crash is None else int(crash),
            rank_ratio=float(search.get("rank_ratio") or 0.0),
            retrain_init=str(search.get("retrain_init") or "fresh"),
            eval_rounds=bool(search.get("eval_rounds", True)),
        )


@dataclass(frozen=True)
class DataSettings:
    """What the data stage reads (`data.build_task_data`): the `task` and `data` sections (typed by
    the schema's TaskConfig / DataConfig), the run's seed and the token length."""

    task: Any
    data: Any
    seed: int
    max_length: int

    @classmethod
    def from_config(cls, cfg: Any) -> "DataSettings":
        return cls(task=cfg.task, data=cfg.data, seed=int(cfg.seed), max_length=int(cfg.train.max_length))


@dataclass(frozen=True)
class DiagnosticsSettings:
    """`search.diagnostics.*` and what its probe reads (the task section, the run's seed, the eval
    batch size, the precision and the token length): the instruments' settings, typed once."""

    enabled: bool
    probe: int
    random_sets: int
    learned_margin: float
    grid: bool
    warmup: bool
    task: Any
    seed: int
    max_length: int
    eval_batch_size: int
    precision: str

    @classmethod
    def from_config(cls, cfg: Any) -> "DiagnosticsSettings":
        diag = cfg.search.diagnostics
        return cls(enabled=bool(diag.enabled), probe=int(diag.probe), random_sets=int(diag.random_sets),
                   learned_margin=float(diag.learned_margin), grid=bool(diag.grid), warmup=bool(diag.warmup),
                   task=cfg.task, seed=int(cfg.seed), max_length=int(cfg.train.max_length),
                   eval_batch_size=int(cfg.train.eval_batch_size), precision=str(cfg.train.precision))
