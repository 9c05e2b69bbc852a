"""Which configuration a run ran: a fingerprint of the resolved config keys that change a result.

A table cell pools seeds of ONE configuration. Two runs that share (model, method row, task) but
differ in, say, `data.train_subset` or `search_space` are not seeds of one experiment: `split_variants`
gives each configuration its own row, labelled by the keys that differ (`LoRA [data.train_subset=500]`).

The fingerprint is read from `run.json`'s `config` (flattened to dotted keys) minus the keys that do
not change a result. The learning rate the row's lr sweep selects over (`aggregate.select_lr`) is left
out too: runs that differ only in it are a sweep, not two configurations.
"""
from __future__ import annotations

import hashlib
import json
import re
from typing import Any

import pandas as pd

from prunepeft.run.identity import with_implied

# Keys (and sections) that never change a result: identity (the seed is the cell's own axis), paths,
# progress and logging, trackers, the run's bookkeeping, where it ran, and measurements the search does
# not act on (docs/method.md#diagnostics: "the search is the same with diagnostics on or off").
# `extra` holds the presets' layout and scale tables; its one result-changing entry, the transfer
# source, is part of the row label (collect.method_label), as are a baseline's `match_compute` and
# `match_params` (each path names the matched run of the same seed: the label's ", equal compute" and
# ", equal parameters").
IGNORED = ("seed", "scale", "command", "restart", "debug", "logger", "extra", "arm", "hydra", "run",
           "strategy.from_run", "match_compute", "match_params", "model.local", "data.dir", "data.cache_dir", "train.device", "train.progress",
           "train.log_every", "train.eval_batch_size", "train.max_nonfinite_steps",
           "train.gradient_checkpointing", "search.diagnostics")
# What a baseline never reads: it trains one fixed configuration, no search.
UNUSED_BY = {"baseline": ("search", "strategy", "search_space"),
             "search": ("method", "size_to_budget", "lora_r", "adapter_bottleneck")}
LR_KEYS = ("train.lr_peft", "train.lr_head", "train.lr_backbone")
FOLLOWS = "= swept lr"  # train.lr_head equal to the swept rate: it moves with the sweep (experiment/common.yaml)


def _flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(obj, dict):
        out: dict[str, Any] = {}
        for key, value in obj.items():
            out.update(_flatten(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: obj}


def _ignored(key: str, command: str | None) -> bool:
    skip = IGNORED + UNUSED_BY.get(command or "", ())
    return any(key == k or key.startswith(k + ".") for k in skip)


def _text(value: Any) -> str:
    """One canonical string per value (`[lora, adapter]` -> `lora,adapter`, None -> `null`)."""
    if isinstance(value, (list, tuple)):
        return ",".join(_text(v) for v in value)
    if value is None:
        return "null"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


# A setting that is read only when another key enables it: while off, its value changes nothing (it
# differs between code versions whose default changed, e.g. type_norm_criteria gained output_ratio).
READ_ONLY_WHEN = {"search.type_norm_criteria": ("search.type_norm", lambda v: v not in (None, "none")),
                  "search.warmup.agreement_probe": ("search.warmup.assign", lambda v: v == "agreement"),
                  "search.rank_ratio": ("search.granularity", lambda v: v == "rank"),
                  "train.regression_head_bias": ("task.num_labels", lambda v: str(v) == "1")}


def fingerprint(config: dict | None, command: str | None, method: str | None,
                device: str | None = None) -> dict[str, str]:
    """The result-changing keys of a run's resolved config, as {dotted key: canonical string}.

    The swept learning rate (the backbone's for FFT, else the PEFT units' together with the head's:
    `collect.lr_label`) is left out; for FFT the head's rate counts where it does not follow the swept one. The backbone's rate is
    left out where the backbone is frozen (every method but FFT). On a CPU (`device`, from run.json)
    every precision runs as fp32 (train/device.py). An empty config gives {} (unknown).
    """
    flat = {k: v for k, v in _flatten(config or {}).items() if not _ignored(k, command)}
    # a key added with a change of behaviour: an older run gets the value it implied (run.identity), so that
    # it is split from later runs, never pooled with them (a key merely absent is unknown: `differing_keys`)
    flat = with_implied(flat) if flat else flat
    for key, (switch, on) in READ_ONLY_WHEN.items():
        if key in flat and switch in flat and not on(flat[switch]):
            del flat[key]
    if "train.precision" in flat and str(device or "").startswith("cpu"):
        flat["train.precision"] = "fp32"
    swept = "train.lr_backbone" if method == "fft" and command == "baseline" else "train.lr_peft"
    if swept == "train.lr_peft":
        flat.pop("train.lr_head", None)  # part of the lr setting the report selects over (collect.lr_label)
    elif "train.lr_head" in flat and swept in flat and flat["train.lr_head"] == flat[swept]:
        flat["train.lr_head"] = FOLLOWS
    flat.pop(swept, None)
    if swept != "train.lr_backbone":
        flat.pop("train.lr_backbone", None)
    return {k: _text(v) for k, v in sorted(flat.items())}


def fingerprint_id(keys: dict[str, str]) -> str:
    """A short stable id of a fingerprint (runs.csv's `fingerprint` column); "" when unknown."""
    if not keys:
        return ""
    return hashlib.sha1(json.dumps(keys, sort_keys=True).encode()).hexdigest()[:10]


def differing_keys(configs: list[dict[str, str]]) -> list[str]:
    """Keys with more than one value among `configs`; a key a run does not record is unknown, not a value
    (a key added to the schema later, or a run without run.json, never splits a cell on its own)."""
    keys = sorted({k for c in configs for k in c})
    return [k for k in keys if len({c[k] for c in configs if k in c}) > 1]


INLINE_KEYS = 2  # a row named by up to this many keys shows them; more: `config i`, spelled out in a note


def split_variants(d: pd.DataFrame, cell: tuple[str, ...] = ("model", "label", "task")) -> pd.DataFrame:
    """`d` with `variant` (the row's name: "" where a (model, label) ran in one configuration, else
    `key=value, ...` or `config i`) and `variant_desc` (always `key=value, ...`).

    Runs of one `cell` with different fingerprints get different variants; the keys that name them are
    those that differ in any task of the (model, label), so that a variant is one row across the tasks.
    """
    d = d.assign(variant="", variant_desc="")
    if d.empty or "config_keys" not in d:
        return d
    for _, rows in d.groupby(["model", "label"], sort=True, dropna=False):
        keys = sorted({k for _, g in rows.groupby(list(cell[2:]), dropna=False)
                       for k in differing_keys(list(g["config_keys"]))})
        if not keys:
            continue
        desc = rows["config_keys"].map(lambda c: ", ".join(f"{k}={c.get(k, '?')}" for k in keys))
        names = {v: v if len(keys) <= INLINE_KEYS else f"config {i}"
                 for i, v in enumerate(sorted(set(desc), key=variant_order), 1)}
        d.loc[rows.index, "variant_desc"] = desc
        d.loc[rows.index, "variant"] = desc.map(names)
    return d


def split_notes(d: pd.DataFrame) -> list[str]:
    """One note per (model, label) of `d` shown in several configurations: the keys, and what `config i` is."""
    notes = []
    split = d[d["variant"] != ""] if "variant" in d else d.iloc[:0]
    for (model, label), rows in split.groupby(["model", "label"], sort=True):
        pairs = dict(sorted(zip(rows["variant"], rows["variant_desc"]), key=lambda kv: variant_order(kv[0])))
        keys = list(dict.fromkeys(part.split("=", 1)[0] for v in pairs.values() for part in v.split(", ")))
        named = "; ".join(f"{name} = {desc}" for name, desc in pairs.items() if name != desc)
        notes.append(f"{model} {label}: one row per configuration (its runs differ in {', '.join(keys)}), never "
                     f"pooled into one cell{': ' + named if named else ''}.")
    return notes


def variant_order(name: str) -> list:
    """Natural order of variant names: `config 2` before `config 10`, `train_subset=500` before `=2000`."""
    return [(0, float(part), "") if _is_number(part) else (1, 0.0, part) for part in re.split(r"([0-9.]+)", name)]


def _is_number(part: str) -> bool:
    try:
        float(part)
        return True
    except ValueError:
        return False


def row_label(label: str, variant: str) -> str:
    """The displayed method: `LoRA`, or `LoRA [data.train_subset=500]` for one of several configurations."""
    return f"{label} [{variant}]" if variant else label
