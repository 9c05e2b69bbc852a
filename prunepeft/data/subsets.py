"""Label-stratified, seeded subsets (the search's warm-up set d and low-fidelity runs, Sec. 3).

Every class keeps its share of the examples (largest-remainder rounding, so each class is within
one example of its exact proportion) and no class is dropped, MNLI's three included. Regression
targets are stratified on 5 quantile bins of the score (docs/method.md#warm-up).
"""
from __future__ import annotations

import numpy as np
from datasets import Dataset

from prunepeft.data.glue import column_values
from prunepeft.errors import UserError

REGRESSION_BINS = 5


def check_subset_size(size: float | int | None, key: str = "subset size") -> None:
    """Refuse a subset size that is neither None, a count (an integer > 1) nor a fraction in (0, 1].

    Args:
        size: the configured value.
        key: the config key it came from, named in the message (`data.train_subset`, ...).

    Raises:
        UserError: size <= 0, or a non-integer above 1 (1.5 is neither a count nor a fraction).
    """
    if size is None:
        return
    value = float(size)
    if not value > 0:
        raise UserError(f"{key}={size!r} must be > 0: a count > 1 or a fraction in (0, 1]")
    if value > 1 and not value.is_integer():
        raise UserError(f"{key}={size!r} is neither a count (an integer > 1) nor a fraction in (0, 1]")


def subset_count(size: float | int | None, n: int, key: str = "subset size") -> int:
    """Resolve a subset size to a row count: None = all, > 1 = a count, (0, 1] = a fraction of `n`.

    Raises:
        UserError: see `check_subset_size`; a fraction that rounds to 0 rows, or a count above `n`
            (naming `key`).
    """
    if size is None:
        return n
    check_subset_size(size, key)
    size = float(size)
    count = int(size) if size > 1 else int(round(size * n))
    if count < 1:
        raise UserError(f"{key}={size:g} (a fraction of {n} rows) selects no rows")
    if count > n:
        raise UserError(f"{key}={count} exceeds the {n} rows available (use a fraction in (0, 1] or a smaller count)")
    return count


def data_fingerprint(ds: Dataset) -> dict[str, object]:
    """Row count and a SHA-256 of the content of `ds` (every column, row order included).

    Recorded in run.json so a resume on different data is refused (a moved `data.dir` with the
    same content is fine).
    """
    import hashlib

    import pandas as pd

    frame = ds.to_pandas()
    digest = hashlib.sha256(",".join(map(str, frame.columns)).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return {"rows": len(frame), "sha256": digest.hexdigest()}


def strata(labels: np.ndarray, regression: bool) -> np.ndarray:
    """Stratum id per row: the label itself, or its quantile bin (0..4) for regression."""
    labels = np.asarray(labels)
    if not regression:
        return labels
    edges = np.quantile(labels.astype(np.float64), np.linspace(0, 1, REGRESSION_BINS + 1)[1:-1])
    return np.searchsorted(edges, labels, side="right")


def allocate(class_sizes: np.ndarray, total: int) -> np.ndarray:
    """Split `total` over classes proportionally to `class_sizes`, each class getting at least one.

    Largest-remainder rounding keeps every class within one example of `total * share`.
    """
    sizes = np.asarray(class_sizes, dtype=np.int64)
    exact = total * sizes / sizes.sum()
    quota = np.maximum(np.floor(exact).astype(np.int64), 1)
    # Hand out the rows left by flooring to the largest remainders (ties: lower stratum first).
    while quota.sum() < total:
        rem = np.where(quota < sizes, exact - quota, -np.inf)
        quota[int(np.argmax(rem))] += 1
    # Undo the at-least-one bumps from the most over-served classes that can spare a row.
    while quota.sum() > total:
        rem = np.where(quota > 1, exact - quota, np.inf)
        quota[int(np.argmin(rem))] -= 1
    return quota


def stratified_indices(labels: np.ndarray, size: float | int | None, seed: int, regression: bool,
                       key: str = "subset size") -> np.ndarray:
    """Sorted row indices of a label-stratified subset (see `stratified_subset`)."""
    n = len(labels)
    count = subset_count(size, n, key)
    if count == n:
        return np.arange(n)
    groups = strata(labels, regression)
    keys, sizes = np.unique(groups, return_counts=True)
    if count < len(keys):
        raise UserError(f"{key}={size!r}: a subset of {count} rows cannot keep all {len(keys)} label strata; "
                        f"use at least {len(keys)}")
    quota = allocate(sizes, count)
    # One seeded permutation; each stratum takes its first rows in that order.
    perm = np.random.default_rng(seed).permutation(n)
    perm_groups = groups[perm]
    picked = [perm[perm_groups == key][:q] for key, q in zip(keys, quota)]
    return np.sort(np.concatenate(picked))


def stratified_subset(ds: Dataset, size: float | int | None, seed: int, label_column: str, regression: bool,
                      key: str = "subset size") -> Dataset:
    """A seeded, label-stratified subset of `ds`, rows in their original order.

    Args:
        ds: the dataset (raw or tokenised).
        size: None = all rows; an integer > 1 = a count (Hydra's 2000.0 works); (0, 1] = a fraction.
        seed: drives the choice of rows (same seed -> same rows).
        label_column: the column to stratify on (`label` raw, `labels` tokenised).
        regression: stratify on 5 quantile bins of the score instead of class ids.
        key: the config key `size` came from (named in every error).

    Raises:
        UserError: see `subset_count`, or fewer rows than label strata.
    """
    if size is None:
        return ds
    if label_column not in ds.column_names:
        raise UserError(f"cannot stratify on column {label_column!r}; columns present: {', '.join(ds.column_names)}")
    idx = stratified_indices(np.asarray(column_values(ds, label_column)), size, seed, regression, key)
    return ds if len(idx) == len(ds) else ds.select(idx.tolist())
