"""`prunepeft evaluate run=<dir> [task=<t>] [split=<s>]`: recompute a finished run's metrics.

    prunepeft evaluate run=outputs/search/rte/minilm_l6/hybrid-s42                 # == summary.json
    prunepeft evaluate run=outputs/search/rte/minilm_l6/hybrid-s42 split=train

With the run's own task and split, the metrics equal summary.json's (same eval subset, length,
batch size and precision, on the same kind of device); the command says whether they do.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from prunepeft.run import outputs
from prunepeft.commands.common import run_in_hydra
from prunepeft.config.schema import register_configs
from prunepeft.errors import UserError


def validate(cfg: DictConfig) -> None:
    """The cheap checks: run= is a finished search or baseline run (Hydra checks task= against conf/task/)."""
    from prunepeft.api import check_run_dir

    if OmegaConf.is_missing(cfg, "run") or not cfg.run:
        raise UserError("evaluate needs run=<directory of a finished `prunepeft search` or `prunepeft baseline` run>")
    check_run_dir(cfg.run)


def _same(a: dict, b: dict) -> bool:
    return set(a) == set(b) and all(
        (isinstance(b[k], float) and math.isnan(b[k]) and math.isnan(a[k])) or a[k] == b[k] for k in a)


def run(cfg: DictConfig, run_dir: Path | None = None) -> dict[str, Any]:
    """Evaluate `cfg.run` on `cfg.task`/`cfg.split`; print the metrics and the comparison."""
    from prunepeft.api import evaluate, load_run_config, resolve_task
    from prunepeft.run.io import atomic_write_json, read_json

    validate(cfg)
    run_cfg = load_run_config(cfg.run)
    task_cfg = resolve_task(run_cfg.task, cfg.task)
    task, split = str(task_cfg.name), str(cfg.split or task_cfg.eval_splits[0])
    metrics = evaluate(cfg.run, task_cfg, split, data_dir=cfg.data_dir)
    summary_file = Path(str(cfg.run)) / outputs.SUMMARY
    recorded = (read_json(summary_file).get("metrics") or {}).get(split) if summary_file.is_file() else None
    same = None
    if recorded is not None and task == str(run_cfg.task.name):
        same = _same(metrics, recorded)
    shown = ", ".join(f"{k} = {v:.4f}" for k, v in metrics.items())
    note = {True: " (equal to summary.json)", False: f" (summary.json has {recorded})", None: ""}[same]
    print(f"{task} {split}: {shown}{note}")
    result = {"task": task, "split": split, "metrics": metrics, "summary_metrics": recorded, "equal_to_summary": same}
    if cfg.out:
        atomic_write_json(cfg.out, result)
    return result


register_configs()


@hydra.main(config_path="../conf", config_name="evaluate", version_base="1.3")
def hydra_entry(cfg: DictConfig) -> None:
    """Hydra app of `prunepeft evaluate` (dispatched by prunepeft.cli)."""
    run_in_hydra(run, cfg)
