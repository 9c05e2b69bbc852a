"""Seed aggregation, learning-rate selection and paired per-seed differences (Tables 2-6).

Every number in a table is computed here from finished runs; nothing is filled in. A cell with no
finished run is `Cell.missing` and is printed as "—".
"""
from __future__ import annotations

import math
import statistics
from collections.abc import Iterable
from dataclasses import dataclass

import pandas as pd

NAN = float("nan")


@dataclass(frozen=True)
class Cell:
    """One table cell: mean ± sample std over `n` seeds (`seeds` lists them)."""

    mean: float = NAN
    std: float = NAN
    n: int = 0
    seeds: tuple[int, ...] = ()
    digits: int = 1
    show_std: bool = True  # False: print the mean only (averages, parameter %)
    at_chance: bool = False  # inside the no-signal range of its dev split (report.chance): marked †, never ranked

    @property
    def missing(self) -> bool:
        return self.n == 0 or math.isnan(self.mean)


def stats(values: Iterable[float], seeds: Iterable[int] = (), digits: int = 1, show_std: bool = True) -> Cell:
    """Mean and sample standard deviation (ddof=1; undefined for one value) of the non-NaN values."""
    vals = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    if not vals:
        return Cell(digits=digits, show_std=show_std)
    std = statistics.stdev(vals) if len(vals) > 1 else NAN
    return Cell(statistics.fmean(vals), std, len(vals), tuple(sorted(seeds)), digits, show_std)


def per_seed(df: pd.DataFrame, column: str = "points") -> pd.Series:
    """`column` per seed (repeated runs of one seed are averaged, so n counts seeds, not directories)."""
    d = df.dropna(subset=[column])
    if d.empty:
        return pd.Series(dtype=float)
    return d.groupby("seed")[column].mean()


def seed_cell(df: pd.DataFrame, column: str = "points", digits: int = 1, show_std: bool = True) -> Cell:
    """Cell of `column` aggregated over the seeds present in `df`."""
    s = per_seed(df, column)
    return stats(s.to_list(), [int(k) for k in s.index], digits, show_std)


def paired_delta(rows: pd.DataFrame, reference: pd.DataFrame, column: str = "points") -> Cell:
    """Mean ± std over shared seeds of (row − reference): the paired per-seed difference.

    Pairing by seed removes the seed-to-seed variance both runs share (same data order, same
    initial head), which dominates on small dev sets such as RTE's 277 examples.
    """
    a, b = per_seed(rows, column), per_seed(reference, column)
    shared = sorted(set(a.index) & set(b.index))
    return stats([a[s] - b[s] for s in shared], [int(s) for s in shared], digits=1)


def select_lr(df: pd.DataFrame,
              keys: tuple[str, ...] = ("model", "label", "task")) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Keep, per `keys` group, the runs of the learning rate with the best mean dev metric.

    The paper tuned the learning rate per task; runs that differ only in `lr` are such a sweep.
    Ties go to the smaller learning rate (sorted order). Returns the kept runs and one row per
    group that had a choice (columns: *keys, lr, candidates, metric).
    """
    if df.empty:
        return df, pd.DataFrame(columns=[*keys, "lr", "candidates", "metric"])
    kept, choices = [], []
    for key, group in df.groupby(list(keys), sort=True, dropna=False):
        means = group.groupby("lr")["value"].mean()
        if len(means) <= 1:
            kept.append(group)
            continue
        lrs = sorted(means.index, key=lambda v: float(v.split()[0]) if v else -1.0)  # "0.01 (head 0.001)"
        best = max(lrs, key=lambda lr: (means[lr], -lrs.index(lr)))
        kept.append(group[group["lr"] == best])
        choices.append({**dict(zip(keys, key)), "lr": best, "candidates": ", ".join(lrs),
                        "metric": str(group["metric"].iloc[0])})
    return pd.concat(kept).sort_index(), pd.DataFrame(choices, columns=[*keys, "lr", "candidates", "metric"])
