"""Which results sit at chance: the run did not learn the task (the tables' † mark, docs/method.md#results-at-chance).

A predictor with no signal — the dev split's majority class, or a constant score — reaches `level` on a
task's metric: accuracy = the majority share p0 of the split, MCC, Pearson and Spearman = 0. Its result
on n dev examples still scatters by sampling alone, with sd √(p0(1−p0)/n) for accuracy (binomial) and
≈ 1/√n for a correlation (Fisher). A result is *at chance* when it is inside the 95 % range of a predictor
with no signal: accuracy below p0 + 1.96 sd (a no-signal predictor may score anywhere below p0, e.g. by
guessing), a correlation with |r| < 1.96 sd (a correlation clearly below 0 is a signal, if a wrong one).
A run there shows no evidence that it learned the task.

Why the tables need it: at `scale=cpu` every CoLA run, FFT included, predicts the majority class (MCC 0.0,
accuracy = p0), and ranking or pairing such cells reads noise as a result. The mark is a statement about
the dev split, not a threshold fitted to the runs: `VALIDATION` holds the split's size and majority share
(tests/test_chance.py checks them against the GLUE parquet files).
"""
from __future__ import annotations

import math
from typing import Optional

Z95 = 1.96
# GLUE validation split per task: (examples, majority-class share; None for regression). Tasks missing here
# (no local data to check against) are never marked.
VALIDATION: dict[str, tuple[int, Optional[float]]] = {
    "rte": (277, 0.5271), "sst2": (872, 0.5092), "cola": (1043, 0.6913), "stsb": (1500, None), "wnli": (71, 0.5634),
}
CORRELATIONS = ("mcc", "pearson", "spearman")


def eval_rows(eval_subset: object, size: int) -> Optional[int]:
    """Rows a run evaluated on, from its `data.eval_subset` as the config holds it (None or "null" = all; a
    count > 1; a fraction in (0, 1], as data/subsets.py `subset_count` reads it); None when unreadable."""
    if eval_subset is None or str(eval_subset) in ("null", "None"):
        return size
    try:
        x = float(str(eval_subset))
    except ValueError:
        return None
    count = int(x) if x > 1 else int(round(x * size))
    return min(size, count) if count >= 1 else None


def chance_bound(task: str, metric: str, split: str = "validation", eval_subset: object = None) -> Optional[float]:
    """The upper end (metric units, e.g. 0.587 for RTE accuracy; for a correlation, of |r|) of the 95 % range
    of a predictor with no signal on `task`'s dev split, or None where it is not known (another split, metric
    or task, an unreadable subset).

    `eval_subset` (the run's `data.eval_subset`) shrinks n; a stratified subset keeps the majority share.
    """
    if split != "validation" or task not in VALIDATION:
        return None
    size, majority = VALIDATION[task]
    n = eval_rows(eval_subset, size)
    if n is None:
        return None
    if metric == "accuracy" and majority is not None:
        return majority + Z95 * math.sqrt(majority * (1 - majority) / n)
    if metric in CORRELATIONS:
        return Z95 / math.sqrt(n)
    return None


def at_chance(value: float, bound: Optional[float], metric: str = "accuracy") -> bool:
    """True when `value` (same units as `bound`) is inside the no-signal range of `metric`; False where none is
    known."""
    if bound is None or value != value:
        return False
    return abs(value) < bound if metric in CORRELATIONS else value < bound
