"""`prunepeft predict run=<dir> input=<file> out=<file>`: predictions of a finished run (or an export).

    prunepeft predict run=outputs/search/rte/minilm_l6/hybrid-s42 input=pairs.tsv out=preds.tsv

`input` (.tsv, .csv, .parquet or .jsonl) needs the task's text columns (RTE: sentence1,
sentence2; SST-2: sentence; see `conf/task/`). `out` (same formats) gets the input's columns
plus `prediction` (class id, or the score of a regression task) and one `logit_<i>` per class.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from prunepeft.commands.common import run_in_hydra
from prunepeft.config.schema import register_configs
from prunepeft.errors import UserError, check_choice

log = logging.getLogger(__name__)

FORMATS = (".tsv", ".csv", ".parquet", ".jsonl")


def _suffix(path: str, key: str) -> str:
    suffix = Path(path).suffix.lower()
    check_choice(f"file type of {key}={path!r} (by extension)", suffix, FORMATS)
    return suffix


def read_table(path: str | Path):
    """A pandas DataFrame from a .tsv/.csv/.parquet/.jsonl file (text read as text)."""
    import pandas as pd

    suffix = _suffix(str(path), "input")
    if Path(path).is_file() and Path(path).stat().st_size == 0:
        raise UserError(f"input={str(path)!r} is empty (not even a header line); give a {suffix} file with "
                        "the task's text columns")
    try:
        if suffix == ".parquet":
            return pd.read_parquet(path)
        if suffix == ".jsonl":
            return pd.read_json(path, lines=True)
        return pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",", dtype=str, keep_default_na=False,
                           quoting=3 if suffix == ".tsv" else 0)  # GLUE TSVs contain bare quotes
    except (OSError, ValueError, pd.errors.ParserError) as err:
        raise UserError(f"input={str(path)!r} cannot be read as {suffix} ({type(err).__name__}: "
                        f"{str(err).splitlines()[0] if str(err) else ''})") from None


def write_table(df, path: str | Path) -> None:
    """Write `df` by the extension of `path` (atomically: written beside, then renamed)."""
    import os
    import tempfile

    from prunepeft.run.io import follow_umask

    suffix = _suffix(str(path), "out")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        if suffix == ".parquet":
            df.to_parquet(tmp, index=False)
        elif suffix == ".jsonl":
            df.to_json(tmp, orient="records", lines=True)
        else:
            df.to_csv(tmp, sep="\t" if suffix == ".tsv" else ",", index=False)
        follow_umask(tmp)  # mkstemp made it 0600
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def validate(cfg: DictConfig) -> None:
    """The cheap checks: run= is a run or export directory, input= exists, known file types."""
    from prunepeft.api import check_run_dir
    from prunepeft.peft.export import EXPORT_FILE

    for key in ("run", "input", "out"):
        if OmegaConf.is_missing(cfg, key) or not cfg[key]:
            raise UserError(f"predict needs {key}=...; usage: prunepeft predict run=<run or export dir> "
                            "input=<.tsv|.csv|.parquet|.jsonl> out=<file>")
    if not (Path(str(cfg.run)) / EXPORT_FILE).is_file():
        check_run_dir(cfg.run)
    _suffix(str(cfg.input), "input")
    _suffix(str(cfg.out), "out")
    if not Path(str(cfg.input)).is_file():
        raise UserError(f"input={str(cfg.input)!r} does not exist")
    if int(cfg.batch_size) < 1:
        raise UserError(f"batch_size must be >= 1, got {cfg.batch_size}")


def run(cfg: DictConfig, run_dir: Path | None = None) -> dict[str, Any]:
    """Predict every row of `cfg.input` with `cfg.run`'s model; write `cfg.out`."""
    from prunepeft.api import _open_any, predict_logits

    validate(cfg)
    df = read_table(cfg.input)
    model, tokenizer, task, max_length = _open_any(cfg.run)
    fields = [str(f) for f in task.text_fields]
    missing = [f for f in fields if f not in df.columns]
    if missing:
        raise UserError(f"input={str(cfg.input)!r} lacks the text column(s) {missing} of task {task.name!r}; "
                        f"it has {list(df.columns)}")
    rows = [tuple("" if v is None else str(v) for v in r) for r in df[fields].itertuples(index=False)]
    if rows:
        logits = predict_logits(model, tokenizer, rows, max_length=max_length, batch_size=int(cfg.batch_size))
    else:  # a header-only input: an output with the header and no rows
        import numpy as np

        logits = np.zeros((0, max(1, int(task.num_labels))), dtype=np.float32)
    out = df.copy()
    out["prediction"] = logits[:, 0] if int(task.num_labels) == 1 else logits.argmax(-1)
    for i in range(logits.shape[1]):
        out[f"logit_{i}"] = logits[:, i]
    write_table(out, cfg.out)
    print(f"predict: {len(out)} rows of {cfg.input} -> {cfg.out} (task {task.name}, column `prediction`)")
    return {"out": str(cfg.out), "rows": len(out)}


register_configs()


@hydra.main(config_path="../conf", config_name="predict", version_base="1.3")
def hydra_entry(cfg: DictConfig) -> None:
    """Hydra app of `prunepeft predict` (dispatched by prunepeft.cli)."""
    run_in_hydra(run, cfg)
