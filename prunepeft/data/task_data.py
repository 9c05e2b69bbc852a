"""Everything a run trains and evaluates on: tokenised train and eval splits of one task."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from datasets import Dataset

from prunepeft.data.glue import column_values, load_raw_splits
from prunepeft.data.subsets import data_fingerprint, stratified_indices, stratified_subset
from prunepeft.data.tokenize import tokenize_split

# The held-out slice does not depend on the run's seed: every seed of a study is scored on the
# same rows, so paired differences between arms carry no extra sampling noise.
HELDOUT_SEED = 20240613
HELDOUT_SPLIT = "train_heldout"


@dataclass
class TaskData:
    """Tokenised splits of one task.

    Attributes:
        train: the (possibly subset) training split, tokenised.
        evals: eval split name -> tokenised dataset, in `task.eval_splits` order.
        train_size_full: rows of the full training split before any subset (reported beside results).
        unused_train: raw (untokenised) training rows that the run never trains on: outside the
            train subset and the held-out slice (the diagnostics probe is drawn from these).
    """

    train: Dataset
    evals: dict[str, Dataset] = field(default_factory=dict)
    train_size_full: int = 0
    unused_train: Dataset | None = None
    identity: dict[str, Any] | None = None  # {"task", "splits": {split: {rows, sha256}}}: run.json records it


def _identity(task: str, fingerprint: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return {"task": task, "splits": fingerprint}


def build_task_data(settings: Any, tokenizer: Any) -> TaskData:
    """Load, subset (label-stratified, seeded with `settings.seed`) and tokenise the task's splits.

    Args:
        settings: `config.typed.DataSettings`: `task` (TaskConfig), `data` (dir, train_subset,
            eval_subset, cache_dir, heldout), `seed`, `max_length` (built once by the command).
        tokenizer: the backbone's tokenizer.

    Raises:
        UserError: missing/unreadable data, missing columns, impossible subset sizes.
    """
    task, data = settings.task, settings.data
    regression = int(task.num_labels) == 1
    raw = load_raw_splits(task, data.dir, cache_dir=getattr(data, "cache_dir", None))
    full_train = raw[task.train_split]
    pool, heldout = _set_aside(full_train, getattr(data, "heldout", None), task.label_field, regression)
    # Subset before tokenising: a 2k slice of SST-2 should not pay for tokenising 67k rows.
    labels = np.asarray(column_values(pool, task.label_field))
    picked = stratified_indices(labels, data.train_subset, settings.seed, regression, "data.train_subset")
    train = pool if len(picked) == len(pool) else pool.select(picked.tolist())
    unused = np.setdiff1d(np.arange(len(pool)), picked)
    evals = {
        split: stratified_subset(raw[split], data.eval_subset, settings.seed, task.label_field, regression,
                                 key="data.eval_subset")
        for split in task.eval_splits
    }
    # What the run trains and evaluates on, by content: the command hands it to `RunDir.start`
    # (run.json records it, a resume checks it); the data layer writes no run record itself.
    identity = _identity(str(task.name), {s: data_fingerprint(ds) for s, ds in {task.train_split: train, **evals}.items()})
    if heldout is not None:
        evals[HELDOUT_SPLIT] = heldout
    max_length = settings.max_length
    return TaskData(
        train=tokenize_split(train, tokenizer, task, max_length),
        evals={split: tokenize_split(ds, tokenizer, task, max_length) for split, ds in evals.items()},
        train_size_full=len(full_train),
        unused_train=pool.select(unused.tolist()) if len(unused) else None,
        identity=identity,
    )


def _set_aside(full_train: Dataset, size: Any, label_field: str, regression: bool) -> tuple[Dataset, Dataset | None]:
    """(the rows left to train on, the fixed held-out slice or None) — see `data.heldout`."""
    if size is None:
        return full_train, None
    labels = np.asarray(column_values(full_train, label_field))
    held = stratified_indices(labels, int(size), HELDOUT_SEED, regression)
    rest = np.setdiff1d(np.arange(len(full_train)), held)
    if len(rest) == 0:
        from prunepeft.errors import UserError

        raise UserError(f"data.heldout={size} leaves no training rows (the split has {len(full_train)})")
    return full_train.select(rest.tolist()), full_train.select(held.tolist())
