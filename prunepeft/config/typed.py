"""A command's settings as typed, frozen objects, built once at the command boundary.

Hydra hands a command a `DictConfig` (checked against `schema.py`); reading it deep inside the
search means `int(cfg.search.k)` in every helper, defaults resolved in several places, and no
telling which copy is the truth. So, as torchtune's recipes do in `setup`, the command unpacks the
config ONCE (`RunSettings.from_config(cfg)`, after its checks passed) into one typed object per
stage: data, model, training, the search loop (Algorithm 1: docs/method.md), the probes, the
diagnostics and summary.json's labels. Below `commands/` functions take these (or the values
they use), never the whole config (tests/test_typed_config.py counts them).

Where a stage's settings are a config section Hydra already typed against the schema (`task`,
`data`, `model`, `train`), the settings hold that section rather than copying its fields.
Settings that belong to an arm (Light-PEFT, backbone pruning: `prunepeft.arms`) are typed by the
arm itself (`pruning.arms.Arm.configure`), and the criteria's own settings by their
`CriterionContext`: this module knows neither.

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
    """What the search loop reads, typed (docs/architecture.md#the-search-step-by-step): Algorithm 1's
    k, rounds, partitions, warm-up and budget B (docs/method.md)."""

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


@dataclass(frozen=True)
class ModelSettings:
    """What builds the backbone and the supernet: the `model` section (ModelConfig), the head's
    label count and the search space (the unit types injected in every layer)."""

    model: Any
    num_labels: int
    search_space: tuple[str, ...]

    @property
    def family(self) -> str:
        return str(self.model.family)


@dataclass(frozen=True)
class TrainSettings:
    """What the training loop (`train.fit`) reads: the `train` section (TrainConfig) and the task
    (its metrics and label column)."""

    loop: Any
    task: Any


@dataclass(frozen=True)
class ProbeSettings:
    """Where the search's probes draw their rows and how they run them (the agreement rule's probe
    and the masked_loss criterion's; docs/method.md#assignment-rules): the rows the diagnostics
    probe takes come out first, so the probes stay disjoint whether diagnostics run or not."""

    task: Any
    seed: int
    diagnostics_rows: int  # search.diagnostics.probe
    agreement_rows: Optional[int]  # search.warmup.agreement_probe (None: what is left, 128..512)
    max_length: int = 128
    eval_batch_size: int = 32
    precision: str = "fp32"


@dataclass(frozen=True)
class RunLabels:
    """What summary.json says a run is (prunepeft.run.outputs.summary): task, model, seed, study arm,
    the headline split and metric, and the learning rates."""

    task: str
    model: str
    seed: int
    arm: Optional[str]  # `arm=`: the study arm; None = the strategy (search) or the method (baseline)
    split: str
    metric: str
    lr: dict


@dataclass(frozen=True)
class RunSettings:
    """Every stage's settings of one command (search or baseline), typed once from its config."""

    seed: int
    data: DataSettings
    model: ModelSettings
    train: TrainSettings
    labels: RunLabels
    search: Optional[SearchSettings] = None  # a search only
    probes: Optional[ProbeSettings] = None  # a search only
    diagnostics: Optional[DiagnosticsSettings] = None  # a search only

    @classmethod
    def from_config(cls, cfg: Any) -> "RunSettings":
        """The settings of a composed config that passed its command's checks: the one place a
        command's whole config is unpacked."""
        seed, task, train = int(cfg.seed), cfg.task, cfg.train
        searching = str(cfg.get("command") or "search") == "search"  # a baseline's config has search defaults too
        return cls(
            seed=seed, data=DataSettings.from_config(cfg),
            model=ModelSettings(model=cfg.model, num_labels=int(task.num_labels),
                                search_space=tuple(str(u) for u in cfg.get("search_space") or ())),
            train=TrainSettings(loop=train, task=task),
            labels=RunLabels(task=str(task.name), model=str(cfg.model.name), seed=seed,
                             arm=str(cfg.arm) if cfg.get("arm") else None, split=str(task.eval_splits[0]),
                             metric=str(task.primary_metric),
                             lr={"peft": float(train.lr_peft), "head": float(train.lr_head),
                                 "backbone": float(train.lr_backbone)}),
            search=SearchSettings.from_config(cfg) if searching else None,
            probes=ProbeSettings(task=task, seed=seed, diagnostics_rows=int(cfg.search.diagnostics.probe),
                                 agreement_rows=None if cfg.search.warmup.get("agreement_probe") is None
                                 else int(cfg.search.warmup.agreement_probe),
                                 max_length=int(train.max_length), eval_batch_size=int(train.eval_batch_size),
                                 precision=str(train.precision)) if searching else None,
            diagnostics=DiagnosticsSettings.from_config(cfg) if searching else None,
        )
