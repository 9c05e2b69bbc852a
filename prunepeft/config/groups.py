"""The fixed config groups of a search or baseline run: the dataclasses Hydra checks
`conf/<group>/*.yaml` against (tiny model sizes, task, data, train, budget, strategy, the search's
warm-up and diagnostics sections, backbone pruning, debug, logger).

None of them gains fields from an extension's settings YAML (those are `ModelConfig` and
`SearchConfig`, built in `config/schema.py`, which re-exports everything here).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from omegaconf import MISSING


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
    # Batch rows of similar length together (transformers' LengthGroupedSampler: megabatches of 50
    # batches, each sorted by length; a fresh seeded order every epoch). Dynamic padding then pads
    # far less: 2.6x fewer tokens on short-sentence tasks like SST-2 (BENCHMARKS §6). Changes the
    # order of training rows, so off by default; the demo turns it on.
    group_by_length: bool = False
    # Where a regression head's output bias starts: `label_mean` (the training labels' mean) or `zero`
    # (as initialised). At 1e-3 a bias at 0 needs thousands of steps to reach STS-B's mean of 2.7, and the
    # units learn little until it does (prunepeft/models/head.py, docs/method.md#regression-head).
    regression_head_bias: str = "label_mean"


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
    # The warm-up's learning rate for the units and the head; null = train.lr_peft / train.lr_head.
    # A warm-up of a few dozen steps can leave the supernet at chance (warmup.json `learning`), and
    # then S_H ranks the initialisation (docs/method.md#warm-up).
    lr: Optional[float] = None
    # S_H per partition key (pruning/assign_rules.py): tendency (argmax τ, the paper's reading and
    # the default) | consensus | agreement (masked passes at each snapshot on its own probe; the
    # `scale=cpu` presets and `make demo` use agreement + strategy.combine=zscore, BENCHMARKS §11.1).
    assign: str = "tendency"
    # Unused training rows of assign=agreement (disjoint from the diagnostics probe); null = as many
    # as are left, up to 512 and at least 128 (`scale=cpu`: RTE's 2k subset leaves only 490).
    agreement_probe: Optional[int] = 512


@dataclass
class DiagnosticsConfig:
    """What each pruning decision knows (`search.diagnostics.enabled`; off by default, it costs)."""

    enabled: bool = False
    probe: int = 512  # held-out training rows on which each unit is masked (never trained on)
    random_sets: int = 50  # random removal sets the round's removed set is compared with
    learned_margin: float = 0.02  # a round "learned nothing" when train loss >= ln(classes) - this
    warmup: bool = True  # also measure each warm-up snapshot (one masked pass per unit per snapshot)
    grid: bool = False  # also judge every assignment x combination rule on each round (analysis/rule_grid.py)


@dataclass
class BackbonePruneConfig:
    """Opt-in early pruning of the backbone (Light-PEFT's masked early pruning; prunepeft.arms.backbone_prune)."""

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
    """The experiment tracker a run reports to (`logger=<name>`, prunepeft.run.trackers)."""

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
