"""The run-output contract: the file names of a run directory and the `summary.json` builder.

One place for what a run writes (docs/architecture.md#the-run-output-contract); the commands, the
report, export and the API read these names from here. `summary.json` carries `schema_version`:

- 1 (no `schema_version` key): before this module; a search's `lr` was the PEFT rate (a float),
  a baseline's `{peft, head, backbone}`;
- 2: one builder for search and baseline; `lr` is always `{peft, head, backbone}`.

The report reads every version (`report.collect.lr_label` takes both `lr` shapes). The fields that
committed results are read by stay in every version: task, model, method (search: also strategy),
seed, primary, params, search (search only), train, metrics.

This module imports nothing from the package (any layer may use it).
"""
from __future__ import annotations

from typing import Any

RUN_JSON = "run.json"
SUMMARY = "summary.json"
FOUND_CONFIG = "found_config.json"
WARMUP = "warmup.json"
ROUNDS = "rounds.jsonl"
EVENTS = "events.jsonl"
UNITS = "units.safetensors"
HEAD = "head.safetensors"
DONE = "DONE"
CHECKPOINT = "checkpoint"

SCHEMA_VERSION = 2


def summary(command: str, cfg: Any, method: str, result: Any, params: dict[str, Any], train: dict[str, Any],
            **extra: Any) -> dict[str, Any]:
    """`summary.json` of a search or a baseline: the headline is the LAST epoch of `result` (a FitResult).

    `extra` holds the command's own fields (search: strategy, found, search, ...; baseline: run,
    size_to_budget, budget); `history` (per epoch) comes last.
    """
    split, metric = str(cfg.task.eval_splits[0]), str(cfg.task.primary_metric)
    return {
        "schema_version": SCHEMA_VERSION, "command": command, "task": str(cfg.task.name),
        "model": str(cfg.model.name), "method": method, "seed": int(cfg.seed),
        **extra,
        "metrics": result.last,
        "primary": {"split": split, "metric": metric, "value": result.last.get(split, {}).get(metric)},
        "best_epoch": result.best_epoch, "best_metrics": result.best,
        "params": params, "train": train,
        "lr": {"peft": float(cfg.train.lr_peft), "head": float(cfg.train.lr_head),
               "backbone": float(cfg.train.lr_backbone)},
        "history": result.history,
    }
