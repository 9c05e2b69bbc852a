"""Read the run outputs under a directory into one pandas DataFrame (one row per run).

The report reads files only (docs/architecture.md#the-run-output-contract): `summary.json` (final metrics, params, costs),
`run.json` (status and the resolved config, used as a fallback for fields an older summary lacks),
`found_config.json` (layers), and the `DONE` marker. Only a directory with `run.json` is a run
(`find_run_dirs`); its resolved config gives the fingerprint that keeps configurations apart. Runs without `DONE` are kept with
`complete=False`: they are listed as incomplete and never used in a table.
"""
from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import pandas as pd

from prunepeft.run import outputs
from prunepeft.report.backbone_check import backbone_label
from prunepeft.report.configs import fingerprint, fingerprint_id

log = logging.getLogger(__name__)

NUMERIC = ("seed", "value", "best_value", "params_percent", "params_peft", "search_wall_s", "search_epoch_eq",
           "search_rounds", "train_wall_s", "train_epochs", "num_layers", "search_over_retrain", "cost_search_s",
           "cost_retrain_s", "cost_warmup_s", "cost_probes_s", "cost_rounds_s")
TASK_NAMES = {"rte": "RTE", "mrpc": "MRPC", "stsb": "STS-B", "cola": "CoLA", "sst2": "SST-2",
              "qnli": "QNLI", "qqp": "QQP", "mnli": "MNLI", "wnli": "WNLI"}
TASK_ORDER = list(TASK_NAMES)  # column order of the paper's GLUE tables
DECODER_FAMILIES = ("llama", "qwen2", "mistral")  # Table 3 backbones; the rest go to Table 2
BASELINE_LABELS = {"fft": "FFT", "head": "Head only", "adapter": "Adapter", "houlsby": "Houlsby",
                   "lora": "LoRA", "dora": "DoRA", "found": "Found config"}
STRATEGY_LABELS = {"hybrid": "PrunePEFT", "none": "No pruning", "random": "Random pruning",
                   "random_matched": "Random, type-matched", "hybrid_no_partition": "No partition"}
# Table 5's equal-compute pair (issue 22, item 5): a PrunePEFT run whose retrain starts from the search's
# trained units, and a uniform baseline trained on as many examples as the PrunePEFT run trained in all.
WARM_RETRAIN, EQUAL_COMPUTE = ", warm retrain", ", equal compute"
# Table 2's comparison at equal parameters (claim (a')): a uniform baseline sized to the found parameter
# count of the PrunePEFT run of the same task, lr and seed (`match_params`).
EQUAL_PARAMS = ", equal parameters"
MATCHED = "random_matched"  # its strategy.from_run is the hybrid run it matches, not a transfer (Table 5)


def _read(path: Path, damaged: list[str] | None = None) -> Any:
    """JSON content of `path`, or None when it is missing or unreadable.

    A file that exists but cannot be parsed is named in `damaged` (when given): the report lists
    such runs under their own heading instead of silently counting them as unfinished.
    """
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        if damaged is not None:
            damaged.append(path.name)
        return None


def _get(obj: Any, *keys: str) -> Any:
    """Nested dict lookup that returns None on any missing level."""
    for key in keys:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def task_name(task: str | None) -> str:
    """Display name of a GLUE task (`sst2` -> `SST-2`)."""
    return TASK_NAMES.get(task or "", task or "?")


def lr_label(lr: Any, method: str | None) -> str:
    """One string per learning-rate setting, so runs differing only in lr can be grouped.

    `summary.json` has `lr` as a float or as `{peft, head, backbone}`; for full fine-tuning the
    backbone rate matters, for everything else the PEFT rate (the head follows it in the presets).
    """
    head = None
    if isinstance(lr, dict):
        key = "backbone" if method == "fft" else "peft"
        head = lr.get("head") if key == "peft" else None
        lr = lr.get(key, next(iter(lr.values()), None))
    if lr is None or (isinstance(lr, float) and math.isnan(lr)):
        return ""
    # The head's rate is part of the learning-rate setting the report selects over: it follows the
    # swept rate in the presets, stays at its default in a plain `train.lr_peft=a,b` sweep.
    if head is not None and not (isinstance(head, float) and math.isnan(head)) and float(head) != float(lr):
        return f"{float(lr):g} (head {float(head):g})"
    return f"{float(lr):g}"


def find_run_dirs(root: Path) -> list[Path]:
    """Every run directory under `root` (itself included): one holding the run file, `run.json`.

    `RunDir.start` writes run.json first, so every run has it, finished or not. A `summary.json`
    alone is not a run: the csv tracker keeps a copy in `trackers/csv/`, and exports, tracker stores
    (mlflow, tensorboard, wandb), `.hydra/`, `checkpoint/` and `.aside/` are never runs either. A
    directory inside a run (its trackers, checkpoint, an export written into it) belongs to that run.
    """
    root = Path(root)
    found = sorted(p.parent for p in root.rglob(outputs.RUN_JSON) if p.is_file())
    found = [d for d in found if not any(part.startswith(".") for part in d.relative_to(root).parts)]
    runs: list[Path] = []
    for d in found:  # sorted: a run comes before anything below it
        if not any(d.is_relative_to(r) for r in runs):
            runs.append(d)
    return runs


def _cost_phases(cost: dict) -> dict:
    """Table 4's wall-clock by phase from summary.json's `cost` (prunepeft.pruning.cost); None before it existed.

    Probes = every masked pass: the warm-up's (agreement, masked_loss, diagnostics) and the rounds'.
    """
    phases = cost.get("phases_s") or {}
    probes = [phases.get(p) for p in ("warmup_probes", "round_probes", "round_diagnostics") if phases.get(p) is not None]
    return {"cost_search_s": cost.get("search_s"), "cost_retrain_s": cost.get("retrain_s"),
            "cost_warmup_s": phases.get("warmup_train"), "cost_rounds_s": phases.get("rounds"),
            "cost_probes_s": sum(probes) if probes else None}


def _transfer(summary: dict, config: dict, method: str | None) -> tuple[str | None, str | None]:
    """(kind, source task) of a transfer run (Table 6).

    From summary.json's `transfer` ({kind, from_task} or {kind, from_run}), else from the config
    (`strategy.from_run`, `method=found run=...`, the presets' `extra.source`); a source run's own
    summary.json names its task when nothing else does.
    """
    if (summary.get("strategy") or _get(config, "strategy", "name")) == MATCHED:
        return None, None
    t = summary.get("transfer") if isinstance(summary.get("transfer"), dict) else {}
    # A baseline never reuses S_H: its `strategy.from_run` is only the preset's global key (Table 6 sets
    # it for both commands), so `method=found` is an architecture transfer whatever that key holds.
    found = method == "found" and summary.get("command", config.get("command")) == "baseline"
    from_run = t.get("from_run") or (None if found else _get(config, "strategy", "from_run"))
    source_dir = from_run or (summary.get("run") or config.get("run") if method == "found" else None)
    kind = t.get("kind") or ("architecture" if found else "strategy" if from_run else
                             "architecture" if method == "found" else None)
    source = t.get("from_task") or _get(config, "extra", "source")
    source = None if source in (None, "none") else source
    if kind and source is None and source_dir:
        source = _get(_read(Path(source_dir) / outputs.SUMMARY), "task")
    return kind, source


def method_label(row: dict) -> str:
    """The row label a run contributes to (Tables 2-6 use these names)."""
    kind, source = row.get("transfer_kind"), row.get("transfer_from")
    if kind == "strategy":
        return f"Strategy transfer from {task_name(source)}"
    if kind == "architecture":
        return f"Architecture transfer from {task_name(source)}"
    if row.get("command") == "baseline":
        label = BASELINE_LABELS.get(row.get("method") or "", row.get("method") or "?")
        return label + (EQUAL_COMPUTE if row.get("match_compute") else "") + (EQUAL_PARAMS if row.get("match_params") else "")
    strategy = row.get("strategy") or "hybrid"
    label = f"Single: {row.get('criterion')}" if strategy == "single" else STRATEGY_LABELS.get(strategy, strategy)
    if row.get("combine") == "reference":
        label += " (reference combine)"  # the authors' later variant, not the paper's Eq. (1)
    if row.get("retrain_init") == "warm":
        label += WARM_RETRAIN
    return label + (" (low fidelity)" if row.get("fidelity") == "low" else "")


def read_run(path: Path, root: Path) -> dict[str, Any]:
    """One run directory as a flat record (missing values are None, never guessed)."""
    damaged: list[str] = []
    summary = _read(path / outputs.SUMMARY, damaged) or {}
    info = _read(path / outputs.RUN_JSON, damaged) or {}
    found = _read(path / outputs.FOUND_CONFIG, damaged) or {}
    config = info.get("config") or {}
    command = summary.get("command") or info.get("command") or config.get("command")
    method = summary.get("method") or ("prunepeft" if command == "search" else config.get("method"))
    primary = summary.get("primary") or {}
    split, metric = primary.get("split"), primary.get("metric")
    search = command == "search"
    row: dict[str, Any] = {
        "run": path.relative_to(root).as_posix() or ".", "path": str(path),
        "complete": (path / outputs.DONE).exists() and bool(summary),
        "status": info.get("status") or ("done" if (path / outputs.DONE).exists() else "incomplete"),
        "command": command, "task": summary.get("task") or _get(config, "task", "name"),
        "model": summary.get("model") or _get(config, "model", "name"),
        "family": found.get("family") or _get(config, "model", "family"),
        "model_kind": _get(config, "model", "kind"), "method": method,
        "strategy": (summary.get("strategy") or _get(config, "strategy", "name")) if search else None,
        "criterion": summary.get("criterion") if "criterion" in summary else _get(config, "strategy", "criterion"),
        "combine": (summary.get("combine") or _get(config, "strategy", "combine")) if search else None,
        "fidelity": (summary.get("fidelity") or _get(config, "search", "fidelity")) if search else None,
        "seed": summary.get("seed", config.get("seed")),
        "lr": lr_label(summary.get("lr", _get(config, "train", "lr_peft")), method),
        "scale": summary.get("scale") or config.get("scale"),
        "split": split, "metric": metric, "value": primary.get("value"),
        "metrics": summary.get("metrics"),  # every split's metrics (the signal report reads the held-out split)
        "best_value": _get(summary, "best_metrics", split or "", metric or ""),
        "params_percent": _get(summary, "params", "percent"), "params_peft": _get(summary, "params", "peft"),
        "search_wall_s": _get(summary, "search", "wall_s"),
        "search_epoch_eq": _get(summary, "search", "epoch_equivalents"),
        "search_rounds": _get(summary, "search", "rounds"),
        # wall-clock, every search pass counted (pruning/cost.py); None before summaries had `cost`
        "search_over_retrain": _get(summary, "cost", "search_over_retrain"),
        **_cost_phases(summary.get("cost") or {}),
        "train_wall_s": _get(summary, "train", "wall_s"), "train_epochs": _get(summary, "train", "epochs"),
        "retrain_init": _get(summary, "train", "init") if search else None,  # fresh | warm (null before it existed)
        "match_compute": _get(summary, "train", "match_compute"),  # baseline: {run, target_examples, epochs, examples}
        "match_params": summary.get("match_params"),  # baseline: {run, params}
        "num_layers": found.get("num_layers"),
        "backbone": backbone_label(summary),  # unpruned | pruned (heads, ffn): one kind per report
        "search_space": ",".join(found.get("search_space") or config.get("search_space") or []) if search else None,
        # the keys that change a result (report.configs): one configuration per table cell
        "config_keys": fingerprint(config, command, method, info.get("device")),
    }
    row["fingerprint"] = fingerprint_id(row["config_keys"])
    if row["strategy"] != "single":
        row["criterion"] = None
    row["transfer_kind"], row["transfer_from"] = _transfer(summary, config, method)
    row["label"] = method_label(row)
    row["unreadable"] = ", ".join(damaged)  # "" when every file parsed
    if damaged:
        log.warning("%s: cannot read %s; the run is listed under 'Runs with unreadable files'", path,
                    ", ".join(damaged))
    return row


def collect_runs(root: str | Path) -> pd.DataFrame:
    """All runs under `root`, one row each, sorted by their relative path.

    Raises nothing for an empty tree: the caller decides (the report command raises UserError).
    """
    root = Path(root)
    rows = [read_run(d, root) for d in find_run_dirs(root)] if root.is_dir() else []
    df = pd.DataFrame(rows)
    for col in NUMERIC if not df.empty else ():
        df[col] = pd.to_numeric(df[col], errors="coerce")  # None -> NaN, so arithmetic never hits None
    return df
