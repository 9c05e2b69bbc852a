"""The schemas of the commands that read runs rather than train one: `prunepeft report`,
`export`, `predict` and `evaluate` (re-exported by `config/schema.py`, which registers them)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from omegaconf import MISSING

from prunepeft.config.groups import TaskConfig


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
