"""What the report's figures read from run outputs, before anything is drawn (no matplotlib here).

Pick counts per criterion (`warmup.json` + `rounds.jsonl`), a run's found units (`found_config.json`),
the (layers, unit types) grid of a model, the active-parameter series over the pruning rounds and
a round's dev metric. `report/figures.py` draws them (and re-exports `pick_counts` and
`round_series`); the underscored helpers serve figures.py only, they are not an API.
"""
from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from prunepeft.run import outputs
from prunepeft.run.io import read_jsonl

# No list of criterion or unit-type names here (the report never imports the registries): criteria
# are drawn in the order the run files list them (the search writes them in registry order), unit
# types in the order of the run's search space, then any other type seen, by name.


def _first_seen(*groups) -> list:
    """The items of `groups`, each once, in order of first appearance."""
    return list(dict.fromkeys(x for group in groups for x in group))


def _space(search_space) -> list[str]:
    """A run's search space as a list (`"lora,adapter"` in the runs table, a list in found_config.json)."""
    if isinstance(search_space, str):
        return [t for t in search_space.split(",") if t]
    return [str(t) for t in search_space] if isinstance(search_space, (list, tuple)) else []


def _unit(key: str) -> tuple[int, str]:
    layer, kind = key.split(":", 1)
    return int(layer), kind


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _searches(runs: pd.DataFrame) -> pd.DataFrame:
    return runs[(runs["command"] == "search") & runs["complete"]] if not runs.empty else runs


def _grid(runs: pd.DataFrame, seen: set[tuple[int, str]]) -> tuple[int, list[str]]:
    """(number of layers, unit types) for a model: from the runs' records, else from the units seen."""
    layers = pd.to_numeric(runs.get("num_layers"), errors="coerce").max() if "num_layers" in runs else math.nan
    n = int(layers) if layers == layers else max((l for l, _ in seen), default=-1) + 1
    spaces = runs.get("search_space", pd.Series(dtype=object)).dropna()
    return n, _first_seen(*(_space(s) for s in spaces), sorted({t for _, t in seen}))


def pick_counts(run: Path) -> dict[str, Counter]:
    """Per criterion, how often each unit was in its top-k: warm-up snapshots plus search rounds."""
    counts: dict[str, Counter] = {}
    for crit, units in (_read_json(run / outputs.WARMUP).get("pick_counts") or {}).items():
        counts.setdefault(crit, Counter()).update({k: int(v) for k, v in units.items()})
    for rec in read_jsonl(run / outputs.ROUNDS):
        for crit, units in (rec.get("picks") or {}).items():
            counts.setdefault(crit, Counter()).update(units)
    return counts


def _kept(path: Path) -> set[tuple[int, str]] | None:
    """Units of a run's found configuration, or None without found_config.json.

    Accepts the flat `units` list ("3:lora", ...) and `layers` as {"3": [{"type": ...}]} or as
    [{"layer": 3, "units": [{"type": ...}]}].
    """
    found = _read_json(path / outputs.FOUND_CONFIG)
    if isinstance(found.get("units"), list):
        return {_unit(k) for k in found["units"]}
    layers = found.get("layers")
    if isinstance(layers, dict):
        return {(int(l), u["type"]) for l, units in layers.items() for u in units}
    if isinstance(layers, list):
        return {(int(e["layer"]), u["type"]) for e in layers for u in e.get("units", [])}
    return None


def _candidates(path: Path, search_space) -> set[str]:
    """The unit types a run could prune: its search space (run.json / found_config.json); for a run that
    records none, the types it kept or removed (a type it never had is never counted as pruned)."""
    space = set(_space(search_space))
    if space:
        return space
    kept = _kept(path) or set()
    removed = {_unit(k) for r in read_jsonl(path / outputs.ROUNDS) for k in r.get("removed", [])}
    return {t for _, t in kept | removed}


def pruned_fraction(kept: dict[str, set], candidates: dict[str, set], paths, layer: int, kind: str) -> float:
    """Share of the runs in `paths` that had `kind` as a candidate and pruned it at `layer` (NaN: none had it)."""
    had = [p for p in paths if kind in candidates[p]]
    return float(np.mean([(layer, kind) not in kept[p] for p in had])) if had else math.nan


def _dev_value(dev: dict, metric: str | None) -> float:
    """The round's dev metric: `{"accuracy": v}` or `{split: {"accuracy": v}}`."""
    if metric in dev and not isinstance(dev[metric], dict):
        return float(dev[metric])
    for v in dev.values():
        if isinstance(v, dict):
            return _dev_value(v, metric)
    return float(next(iter(dev.values()))) if dev else math.nan


def _unit_params(path: Path, rounds: list[dict]) -> dict[str, float]:
    """Parameters of one unit of each type: from found_config.json, else from a round that removed
    only that unknown type, else the weight-matrix count in the round statistics (no biases)."""
    found = _read_json(path / outputs.FOUND_CONFIG)
    per_type: dict[str, float] = {}
    for entry in found.get("layers", []) if isinstance(found.get("layers"), list) else []:
        for unit in entry.get("units", []):
            if unit.get("params"):
                per_type.setdefault(unit["type"], float(unit["params"]))
    for prev, rec in zip(rounds, rounds[1:]):
        removed = [_unit(k)[1] for k in rec.get("removed", [])]
        unknown = {t for t in removed if t not in per_type}
        if len(unknown) == 1 and None not in (prev.get("params_left"), rec.get("params_left")):
            t = unknown.pop()
            rest = sum(per_type[x] for x in removed if x != t)
            per_type[t] = (prev["params_left"] - rec["params_left"] - rest) / removed.count(t)
    for key, stats in (rounds[0].get("statistics") or {}).items() if rounds else []:
        per_type.setdefault(_unit(key)[1], float(stats.get("numel", math.nan)))
    return per_type


def round_series(path: Path, rounds: list[dict]) -> tuple[list[int], list[float], float | None]:
    """(x = 0..R, active PEFT params % after each round with round 0 = the supernet, budget %)."""
    base = next((r["params_left"] / r["percent_left"] * 100 for r in rounds
                 if r.get("params_left") and r.get("percent_left")), None)
    x = [0] + [int(r.get("round", i + 1)) for i, r in enumerate(rounds)]
    pct = [r.get("percent_left", math.nan) for r in rounds]
    first = rounds[0]
    if base and first.get("params_left") is not None:
        per_type = _unit_params(path, rounds)
        before = first["params_left"] + sum(per_type.get(_unit(k)[1], math.nan) for k in first.get("removed", []))
        start = before / base * 100
    else:
        start = math.nan
    budget = rounds[0].get("budget")
    return x, [start, *pct], (budget / base * 100 if budget is not None and base else None)
