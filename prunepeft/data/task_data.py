"""Everything a run trains and evaluates on: tokenised train and eval splits of one task."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from datasets import Dataset

from prunepeft.data.glue import load_raw_splits
from prunepeft.data.subsets import stratified_subset
from prunepeft.data.tokenize import tokenize_split


@dataclass
class TaskData:
    """Tokenised splits of one task.

    Attributes:
        train: the (possibly subset) training split, tokenised.
        evals: eval split name -> tokenised dataset, in `task.eval_splits` order.
        train_size_full: rows of the full training split before any subset (reported beside results).
    """

    train: Dataset
    evals: dict[str, Dataset] = field(default_factory=dict)
    train_size_full: int = 0


def build_task_data(cfg: Any, tokenizer: Any) -> TaskData:
    """Load, subset (label-stratified, seeded with `cfg.seed`) and tokenise `cfg.task`'s splits.

    Args:
        cfg: the composed run config: `task` (TaskConfig), `data` (dir, train_subset, eval_subset,
            cache_dir), `train.max_length`, `seed`. A DictConfig or the dataclasses.
        tokenizer: the backbone's tokenizer.

    Raises:
        UserError: missing/unreadable data, missing columns, impossible subset sizes.
    """
    task, data = cfg.task, cfg.data
    regression = int(task.num_labels) == 1
    raw = load_raw_splits(task, data.dir, cache_dir=getattr(data, "cache_dir", None))
    full_train = raw[task.train_split]
    # Subset before tokenising: a 2k slice of SST-2 should not pay for tokenising 67k rows.
    train = stratified_subset(full_train, data.train_subset, int(cfg.seed), task.label_field, regression)
    evals = {
        split: stratified_subset(raw[split], data.eval_subset, int(cfg.seed), task.label_field, regression)
        for split in task.eval_splits
    }
    max_length = int(cfg.train.max_length)
    return TaskData(
        train=tokenize_split(train, tokenizer, task, max_length),
        evals={split: tokenize_split(ds, tokenizer, task, max_length) for split, ds in evals.items()},
        train_size_full=len(full_train),
    )
