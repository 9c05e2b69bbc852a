"""The run-output contract: the file names of a run directory and the `summary.json` builder.

One place for what a run writes (docs/architecture.md#the-run-output-contract); the commands, the
report, export and the API read these names from here. `summary.json` carries `schema_version`:

- 1 (no `schema_version` key): before this module; a search's `lr` was the PEFT rate (a float),
  a baseline's `{peft, head, backbone}`;
- 2: one builder for search and baseline; `lr` is always `{peft, head, backbone}`.

The report reads every version (`report.collect.lr_label` takes both `lr` shapes). The fields that
committed results are read by stay in every version: task, model, method (search: also strategy),
seed, primary, params, search (search only), train, metrics.

No other module spells these names (tests/test_outputs.py scans the package for them). The trained
units and head (`UNITS`, `HEAD`, and the checkpoint's weights) are written and read by ONE pair of
functions, `prunepeft.peft.weights.save_trained` / `load_trained` (one key scheme for all three).

This module imports nothing from the package (any layer may use it).
"""
from __future__ import annotations

from typing import Any

# -- a run directory ------------------------------------------------------------------------------
RUN_JSON = "run.json"
SUMMARY = "summary.json"
FOUND_CONFIG = "found_config.json"
WARMUP = "warmup.json"
ROUNDS = "rounds.jsonl"
EVENTS = "events.jsonl"
UNITS = "units.safetensors"
HEAD = "head.safetensors"
MODEL = "model.safetensors"  # a full fine-tuning (fft) baseline: every trained weight, head included
DONE = "DONE"
CHECKPOINT = "checkpoint"  # a directory: CHECKPOINT_STATE + one weights file per generation
RANK_STAGE = "rank_stage.json"  # granularity=rank
BACKBONE_PRUNE = "backbone_prune.json"  # backbone_prune.enabled
LOCK = ".lock"  # the run lock (prunepeft.run.lock)
ASIDE = ".aside"  # `restart=true` moves a run's old files here (hidden: the report skips it)
HYDRA_DIR = ".hydra"
HYDRA_CONFIG = f"{HYDRA_DIR}/config.yaml"
HYDRA_OVERRIDES = f"{HYDRA_DIR}/overrides.yaml"
TRACKERS = "trackers"  # trackers/<name>/ unless logger.dir says otherwise
LOGS = (EVENTS, ROUNDS)  # append-only: healed before a resume appends to them
LOG_SUFFIX = ".log"  # <command>.log, Hydra's job log (kept by restart=true)

# -- inside CHECKPOINT/ ----------------------------------------------------------------------------
CHECKPOINT_STATE = "state.json"
CHECKPOINT_WEIGHTS_V1 = "supernet.safetensors"  # checkpoints written before generations existed
CHECKPOINT_WEIGHTS_GLOB = "supernet*.safetensors"


def checkpoint_weights(generation: int) -> str:
    """The weights file of checkpoint generation `generation`."""
    return f"supernet-{generation:05d}.safetensors"


# -- inside TRACKERS/<name>/ (the csv tracker) ------------------------------------------------------
TRACKER_CONFIG = "config.yaml"
TRACKER_METRICS = "metrics.csv"
TRACKER_SUMMARY = SUMMARY  # a copy of the run's summary.json

# -- a sweep directory (Hydra multirun; prunepeft.run.sweep) -------------------------------------------
# Each sweep's own directory: sweeps/current.json -> sweeps/<id>/{sweep.json, job-<num>.json,
# sweep_summary.json, sweep_summary.md}; an earlier sweep's directory is never rewritten.
SWEEP_RECORD = "sweeps"
SWEEP_CURRENT = "current.json"
SWEEP_META = "sweep.json"
SWEEP_SUMMARY = "sweep_summary.json"
SWEEP_SUMMARY_MD = "sweep_summary.md"
SWEEP_JOB_GLOB = "job-*.json"


def sweep_job(num: int) -> str:
    """The record of job `num` of a sweep."""
    return f"job-{num:05d}.json"

SCHEMA_VERSION = 2


def summary(command: str, labels: Any, method: str, result: Any, params: dict[str, Any], train: dict[str, Any],
            **extra: Any) -> dict[str, Any]:
    """`summary.json` of a search or a baseline: the headline is the LAST epoch of `result` (a FitResult).

    `labels`: what the run is (`config.typed.RunLabels`: task, model, seed, arm, headline split and
    metric, rates), typed once by the command. `extra` holds the command's own fields (search:
    strategy, found, search, ...; baseline: run, size_to_budget, budget); `history` (per epoch) comes last.
    """
    split, metric = labels.split, labels.metric
    return {
        "schema_version": SCHEMA_VERSION, "command": command, "task": labels.task,
        "model": labels.model, "method": method, "seed": labels.seed,
        # The study arm a run belongs to (`arm=`): two arms can share a strategy, e.g. two readings
        # of the hybrid's assignment rule; default the strategy (search) or the method (baseline).
        "arm": str(labels.arm or extra.get("strategy") or method),
        **extra,
        "metrics": result.last,
        "primary": {"split": split, "metric": metric, "value": result.last.get(split, {}).get(metric)},
        "best_epoch": result.best_epoch, "best_metrics": result.best,
        "params": params, "train": train,
        "lr": dict(labels.lr),
        "history": result.history,
    }
