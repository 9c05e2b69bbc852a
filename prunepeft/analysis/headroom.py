"""Headroom (issue 26), computed: is there a configuration better than uniform PEFT at the same
parameters, and does any search find it? `prunepeft.report.headroom` renders these rows.

A study folder holds an *envelope*: per seed, N random configurations at the parameter count of that
seed's hybrid found configuration (± one unit), each retrained with the same recipe, as runs
`env<j>-s<seed>` (`python -m benchmarks.headroom` draws and runs them). Every other arm of the same
folder (`hybrid`, `uniform_lora_eqparams`, `masked_loss`, ...) is a *marker*: where it falls in its
seed's envelope is the headroom it leaves.

- per seed: the envelope's size, parameters, best / upper quartile / median / lower quartile / worst,
  and each marker's value and percentile in the envelope (mid-rank: 100 × (#below + ½ #tied) / N);
- per marker, across seeds: the mean percentile, and the paired differences to the envelope's best and
  median (mean ± 95 % half-width, t quantile), in points; the same for the envelope's best over median;
- per unit (layer:type): how often it is in the top quarter of each seed's envelope against how often
  it was drawn at all (which layers and types the best configurations share).

Values are the held-out split's primary metric (`train_heldout`, the study's 5k rows), in points.
"""
from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pandas as pd

from prunepeft.analysis.signal import HELDOUT_SPLIT, arms, metric_of
from prunepeft.analysis.stats import mean_ci, percentile_in
from prunepeft.run import outputs
from prunepeft.run.io import read_json

ENVELOPE = re.compile(r"env\d+")
# Markers first in this order, then the others by name.
MARKER_ORDER = ("hybrid", "masked_loss", "uniform_lora_eqparams", "uniform_adapter_eqparams")


def _units(path: str) -> list[str]:
    file = Path(path) / outputs.FOUND_CONFIG
    try:
        return list(read_json(file).get("units") or []) if file.exists() else []
    except (OSError, ValueError):
        return []


def collect_headroom(df: pd.DataFrame, split: str = HELDOUT_SPLIT) -> dict[str, dict[str, Any]]:
    """{folder: {"envelope": {seed: [(value, units, params)]}, "markers": {arm: {seed: (value, params)}}}},
    values in points; only folders with envelope runs, only seeds with a finished envelope run."""
    out: dict[str, dict[str, Any]] = {}
    for arm, group in arms(df):
        folder, _, name = arm.rpartition("/")
        study = out.setdefault(folder, {"envelope": {}, "markers": {}})
        for r in group.itertuples():
            value = metric_of(r, split)
            if value is None:
                continue
            params = None if pd.isna(r.params_peft) else int(r.params_peft)
            if ENVELOPE.fullmatch(name):
                study["envelope"].setdefault(int(r.seed_), []).append((100.0 * value, _units(r.path), params))
            else:
                study["markers"].setdefault(name, {})[int(r.seed_)] = (100.0 * value, params)
    return {f: s for f, s in out.items() if s["envelope"]}


def marker_names(markers: dict) -> list[str]:
    return [m for m in MARKER_ORDER if m in markers] + sorted(m for m in markers if m not in MARKER_ORDER)


def seed_rows(study: dict[str, Any]) -> pd.DataFrame:
    """One row per seed: the envelope's distribution and each marker's value and percentile."""
    rows = []
    for seed, draws in sorted(study["envelope"].items()):
        values = np.array([v for v, _, _ in draws], dtype=float)
        params = [p for _, _, p in draws if p is not None]
        row: dict[str, Any] = {
            "seed": seed, "n": len(values),
            "params_min": min(params) if params else None, "params_median": float(np.median(params)) if params else None,
            "params_max": max(params) if params else None,
            "best": float(values.max()), "q75": float(np.quantile(values, 0.75)), "median": float(np.median(values)),
            "q25": float(np.quantile(values, 0.25)), "worst": float(values.min()),
        }
        for m in marker_names(study["markers"]):
            got = study["markers"][m].get(seed)
            row[f"{m}"] = None if got is None else got[0]
            row[f"{m}_params"] = None if got is None else got[1]
            row[f"{m}_pct"] = None if got is None else percentile_in(got[0], list(values))
        rows.append(row)
    return pd.DataFrame(rows)


def partial_seeds(study: dict[str, Any]) -> dict[int, int]:
    """{seed: draws} of the seeds whose envelope has fewer draws than the largest one (a study still running):
    listed per seed, never pooled across seeds, where their best, median and percentiles would sit beside
    complete envelopes' as if comparable."""
    sizes = {seed: len(draws) for seed, draws in study["envelope"].items()}
    full = max(sizes.values(), default=0)
    return {seed: n for seed, n in sorted(sizes.items()) if n < full}


def marker_rows(study: dict[str, Any]) -> pd.DataFrame:
    """Per marker across the seeds with a complete envelope (`partial_seeds` left out): mean percentile,
    paired Δ to the envelope's best and median (mean, ±95 %, n)."""
    per_seed = seed_rows(study)
    per_seed = per_seed[~per_seed["seed"].isin(list(partial_seeds(study)))]
    rows = []
    for m in marker_names(study["markers"]):
        sub = per_seed[per_seed[m].notna()] if m in per_seed else per_seed.iloc[:0]
        if sub.empty:
            continue
        rows.append({"arm": m, "n": len(sub), "percentile": float(sub[f"{m}_pct"].mean()),
                     "pct_min": float(sub[f"{m}_pct"].min()), "pct_max": float(sub[f"{m}_pct"].max()),
                     "value": float(sub[m].mean()),
                     "delta_best": mean_ci(list(sub[m] - sub["best"])) or _single(sub[m] - sub["best"]),
                     "delta_median": mean_ci(list(sub[m] - sub["median"])) or _single(sub[m] - sub["median"])})
    rows.append({"arm": "envelope best", "n": len(per_seed), "percentile": None, "pct_min": None, "pct_max": None,
                 "value": float(per_seed["best"].mean()), "delta_best": None,
                 "delta_median": mean_ci(list(per_seed["best"] - per_seed["median"]))
                 or _single(per_seed["best"] - per_seed["median"])})
    return pd.DataFrame(rows)


def _single(diffs: pd.Series) -> Optional[tuple[float, float, int]]:
    """One seed: (the difference, nan half-width, 1); none: None."""
    return (float(diffs.iloc[0]), math.nan, 1) if len(diffs) == 1 else None


def unit_rows(study: dict[str, Any], top: float = 0.25) -> pd.DataFrame:
    """Per unit (layer:type): the share of all draws holding it, the share of the draws in the top `top`
    fraction of their seed's envelope holding it, and the difference (lift)."""
    drawn: dict[str, int] = {}
    best: dict[str, int] = {}
    n_all = n_top = 0
    for seed, draws in study["envelope"].items():
        ranked = sorted(draws, key=lambda d: -d[0])
        k = max(1, math.ceil(top * len(ranked)))
        for i, (_, units, _) in enumerate(ranked):
            n_all += 1
            n_top += i < k
            for u in units:
                drawn[u] = drawn.get(u, 0) + 1
                if i < k:
                    best[u] = best.get(u, 0) + 1
    rows = []
    for u in sorted(drawn, key=lambda x: (int(x.split(":")[0]), x.split(":")[1])):
        share_all, share_top = drawn[u] / n_all, best.get(u, 0) / n_top
        rows.append({"unit": u, "drawn": share_all, "top": share_top, "lift": share_top - share_all})
    return pd.DataFrame(rows)


__all__ = ["collect_headroom", "marker_names", "marker_rows", "partial_seeds", "percentile_in", "seed_rows", "unit_rows"]
