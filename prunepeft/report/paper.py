"""The paper's reported numbers (paper_reference.csv), matched to our rows and columns.

Each of our rows gets, per value column, the number the paper reports for the same method (its
`paper` column) and Δ = ours − paper (`tables.attach_paper`). The paper's method names are mapped to
our row labels (`FFT*` -> `FFT`, `Random Prune` -> `Random pruning`, ...); a CSV that already uses
our labels (`reference_csv=`) needs no mapping. The paper's backbone differs from ours: the caption
names it, and its numbers are never ranked or averaged with ours.
"""
from __future__ import annotations

import csv
import re
from pathlib import Path

import pandas as pd

from prunepeft.errors import UserError
from prunepeft.report.collect import TASK_NAMES, TASK_ORDER, task_name

REFERENCE_CSV = Path(__file__).with_name("paper_reference.csv")
REFERENCE_HEADER = ["table", "model", "method", "column", "value", "source", "note"]
PAPER_MODELS = {"roberta-large": "RoBERTa-large", "llama3-8b": "Llama-3-8B"}
# The paper's method names -> our row labels (collect.method_label, tables.ABLATION_ROWS).
PAPER_METHODS = {"FFT*": "FFT", "Adapter(r=128)": "Adapter", "LoRA(r=32)": "LoRA", "DoRA(r=32)": "DoRA",
                 "PrunePEFT(low fidelity)": "PrunePEFT (low fidelity)", "Without Prune": "No pruning",
                 "Random Prune": "Random pruning", "Prune with Single Strategy": "Single criterion",
                 "Without Block Partition": "No partition", "no transfer": "PrunePEFT"}
TRANSFERS = ((re.compile(r"^(\S+) pruning strategy transfer$"), "Strategy transfer from {}"),
             (re.compile(r"^(\S+) fine-tuned architecture transfer$"), "Architecture transfer from {}"))
# The paper's Table 4 columns -> ours (its ratio is search epochs / retrain epochs).
PAPER_COLUMNS = {"search_epochs": "Search (epoch-eq.)", "retrain_epochs": "Retrain epochs",
                 "ratio": "Search / retrain (epoch-eq.)"}
_DISPLAY_TO_TASK = {name: key for key, name in TASK_NAMES.items()}


def load_reference(path: str | Path | None = None) -> pd.DataFrame:
    """The paper's reported numbers (versioned CSV; header `table,model,method,column,value,source,note`)."""
    path = Path(path) if path else REFERENCE_CSV
    if not path.is_file():
        raise UserError(f"reference_csv={str(path)!r} does not exist; "
                        f"give a CSV with header {','.join(REFERENCE_HEADER)}")
    with open(path, encoding="utf-8", newline="") as fh:
        header = next(csv.reader(fh), [])
    if header != REFERENCE_HEADER:
        raise UserError(f"reference_csv={str(path)!r} has header {header}; expected {','.join(REFERENCE_HEADER)}")
    ref = pd.read_csv(path, dtype=str, keep_default_na=False)
    bad = [v for v in ref["value"] if not _is_number(v)]
    if bad:
        raise UserError(f"reference_csv={str(path)!r}: non-numeric value(s) {bad[:3]}; "
                        "leave a number out instead of guessing")
    return ref


def _is_number(v: str) -> bool:
    try:
        float(v)
        return True
    except ValueError:
        return False


def paper_model_label(model: str) -> str:
    """`roberta-large` -> `RoBERTa-large` (other names as written in the CSV)."""
    return PAPER_MODELS.get(model, model)


def our_label(method: str) -> str:
    """The row label of ours a paper method stands beside (`Random Prune` -> `Random pruning`)."""
    for pattern, label in TRANSFERS:
        if m := pattern.match(method):
            return label.format(task_name(_DISPLAY_TO_TASK.get(m.group(1), m.group(1))))
    return PAPER_METHODS.get(method, method)


def our_column(column: str) -> str:
    """A reference column as our column name: `sst2` or `SST-2` -> `SST-2`, `avg` -> `Avg`."""
    key = _DISPLAY_TO_TASK.get(column, column)
    if key in TASK_ORDER:
        return task_name(key)
    return "Avg" if column.lower() == "avg" else PAPER_COLUMNS.get(column, column)


def _params(note: str) -> str | None:
    """The printed `%Param.` of a row (`%param 0.40%` -> `0.40`), or None."""
    match = re.search(r"%param\s*([0-9.]+)\s*%", note or "", flags=re.IGNORECASE)
    return match.group(1) if match else None


def base_label(label: str) -> str:
    """Our row label without what the paper does not name: the chosen single criterion."""
    return re.sub(r" \(best: [^)]*\)$", "", label)


def paper_numbers(ref: pd.DataFrame, table: str) -> tuple[dict[tuple[str, str], str], dict[str, list[str]], str]:
    """The paper's numbers of `table` as ({(our label, our column): printed value}, {our label: the
    tasks of its Avg}, the paper's backbone(s)). `%param` notes give `Params (%)`."""
    sub = ref[ref["table"] == table]
    values: dict[tuple[str, str], str] = {}
    avg_tasks: dict[str, list[str]] = {}
    for (model, method), g in sub.groupby(["model", "method"], sort=False):
        label = our_label(method)
        if any(k[0] == label for k in values):
            continue  # a second backbone of the same method: the first one listed stands beside ours
        for column, value in zip(g["column"], g["value"]):
            values[(label, our_column(column))] = value
        avg_tasks[label] = [our_column(c) for c in g["column"] if our_column(c) in map(task_name, TASK_ORDER)]
        params = next((p for n in g["note"] if (p := _params(n))), None)
        if params is not None:
            values[(label, "Params (%)")] = params
    models = ", ".join(dict.fromkeys(paper_model_label(m) for m in sub["model"]))
    return values, avg_tasks, models
