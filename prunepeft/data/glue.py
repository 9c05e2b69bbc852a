"""Raw GLUE splits from a local directory of Parquet files or from the Hugging Face hub.

A local directory uses the HF `nyu-mll/glue` schema, one file per task and split:
`<dir>/<task>/<split>.parquet`. The directory comes from `data.dir`, else `$PRUNEPEFT_DATA_DIR`,
else the hub is used (`datasets.load_dataset(task.hub_dataset, task.hub_config)`).
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from datasets import Dataset
from datasets.table import InMemoryTable

from prunepeft.errors import UserError

ENV_DATA_DIR = "PRUNEPEFT_DATA_DIR"
LAYOUT = "<dir>/<task>/<split>.parquet"

# Per-process cache of local files: (path, mtime_ns, size) -> Dataset. Returning the same object
# (with a fingerprint derived from the file) lets the tokenisation cache recognise it again.
_LOCAL_CACHE: dict[tuple[str, int, int], Dataset] = {}


def resolve_data_dir(data_dir: str | os.PathLike | None) -> Path | None:
    """The local data directory: `data_dir`, else `$PRUNEPEFT_DATA_DIR`, else None (= the hub)."""
    chosen = data_dir if data_dir not in (None, "") else os.environ.get(ENV_DATA_DIR) or None
    return None if chosen is None else Path(chosen).expanduser()


def column_values(ds: Dataset, name: str) -> list[Any] | np.ndarray:
    """One column of `ds` (honouring a `select` index mapping) without a slow row-wise walk."""
    col = ds.with_format("arrow")[:][name]
    return col.to_numpy(zero_copy_only=False) if not _is_string(col) else col.to_pylist()


def _is_string(col: Any) -> bool:
    return pa.types.is_string(col.type) or pa.types.is_large_string(col.type)


def _read_local(path: Path) -> Dataset:
    stat = path.stat()
    key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    if key not in _LOCAL_CACHE:
        try:
            table = pq.read_table(path)
        except Exception as err:  # pyarrow raises several types for corrupt/non-parquet files
            raise UserError(f"cannot read Parquet file {path}: {err}") from err
        # The HF schema metadata in the file restores ClassLabel features without going online.
        fingerprint = hashlib.sha1(repr(key).encode()).hexdigest()[:16]
        _LOCAL_CACHE[key] = Dataset(InMemoryTable(table), fingerprint=fingerprint)
    return _LOCAL_CACHE[key]


def _load_local(task: Any, root: Path, splits: list[str]) -> dict[str, Dataset]:
    if not root.is_dir():
        raise UserError(
            f"data directory {root} does not exist; expected the layout {LAYOUT} "
            f"(set data.dir=... or ${ENV_DATA_DIR}, or leave both unset to use the hub)"
        )
    task_dir = root / task.name
    out = {}
    for split in splits:
        path = task_dir / f"{split}.parquet"
        if not path.is_file():
            have = sorted(p.name for p in task_dir.glob("*.parquet")) if task_dir.is_dir() else []
            raise UserError(
                f"missing data file {path} for task {task.name!r} split {split!r}; expected the layout "
                f"{LAYOUT}; found in {task_dir}: {', '.join(have) or 'nothing'}"
            )
        out[split] = _read_local(path)
        _check_columns(out[split], task, str(path))
    return out


def _load_hub(task: Any, splits: list[str], cache_dir: str | None) -> dict[str, Dataset]:
    import datasets

    where = f"{task.hub_dataset}/{task.hub_config}"
    try:
        dd = datasets.load_dataset(task.hub_dataset, task.hub_config, cache_dir=cache_dir)
    except Exception as err:  # no network, unknown config, ...: say how to use local files instead
        raise UserError(
            f"cannot load {where} from the Hugging Face hub ({type(err).__name__}: {err}); "
            f"for local files set data.dir=... or ${ENV_DATA_DIR} to a directory laid out as {LAYOUT}"
        ) from err
    out = {}
    for split in splits:
        if split not in dd:
            raise UserError(f"split {split!r} not in {where}; available: {', '.join(sorted(dd))}")
        out[split] = dd[split]
        _check_columns(out[split], task, f"{where} split {split}")
    return out


def _check_columns(ds: Dataset, task: Any, source: str) -> None:
    needed = [*task.text_fields, task.label_field]
    missing = [c for c in needed if c not in ds.column_names]
    if missing:
        raise UserError(
            f"{source} lacks column(s) {', '.join(missing)} needed by task {task.name!r}; "
            f"columns present: {', '.join(ds.column_names)}"
        )
    _check_labels(ds, task, source)


def _check_labels(ds: Dataset, task: Any, source: str) -> None:
    if len(ds) == 0:
        raise UserError(f"{source} has no rows")
    labels = np.asarray(column_values(ds, task.label_field))
    if np.all(labels == -1):
        # GLUE test splits carry -1: their labels are private (use the validation splits).
        raise UserError(f"{source} is unlabelled (every label is -1, as in GLUE test splits); use train/validation")
    if task.num_labels > 1:
        bad = labels[(labels < 0) | (labels >= task.num_labels)]
        if bad.size:
            raise UserError(
                f"{source} has label(s) {sorted(set(bad.tolist()))[:5]} outside 0..{task.num_labels - 1} "
                f"(task {task.name!r} declares num_labels={task.num_labels})"
            )


def load_raw_splits(task: Any, data_dir: str | os.PathLike | None, cache_dir: str | None = None) -> dict[str, Dataset]:
    """Load the task's train and eval splits, untokenised, with their columns checked.

    Args:
        task: a TaskConfig (dataclass or DictConfig): name, hub_dataset, hub_config, text_fields,
            label_field, num_labels, train_split, eval_splits.
        data_dir: a local directory laid out as `<dir>/<task>/<split>.parquet`; None falls back to
            `$PRUNEPEFT_DATA_DIR`, then to the hub.
        cache_dir: the `datasets` cache directory for the hub path (None = its default).

    Returns:
        split name -> Dataset for `[task.train_split, *task.eval_splits]`.

    Raises:
        UserError: missing directory or file, unreadable Parquet, missing columns, unlabelled split.
    """
    if len(task.text_fields) not in (1, 2):
        raise UserError(f"task {task.name!r} needs 1 or 2 text_fields, got {list(task.text_fields)}")
    splits = list(dict.fromkeys([task.train_split, *task.eval_splits]))
    root = resolve_data_dir(data_dir)
    return _load_local(task, root, splits) if root is not None else _load_hub(task, splits, cache_dir)
