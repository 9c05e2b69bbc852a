"""The head-bias comparison of BENCHMARKS.md §16 (`python -m benchmarks.head_bias --report`): dev Pearson ×100
on STS-B per method, seed 1, the regression head's bias starting at 0 against starting at the labels' mean.

Both sides are read as `prunepeft report` reads runs (`report.collect`), so a row is the same method label
the tables print. One run per cell: a screening of a training fix, not a paired comparison over seeds.
"""
from __future__ import annotations

import sys
from pathlib import Path

from benchmarks.lib.report_tables import MINUS, signed
from benchmarks.lib.study_runner import RESULTS
from prunepeft.report.chance import at_chance, chance_bound
from prunepeft.report.collect import collect_runs
from prunepeft.report.tables import MAIN_ROWS
from prunepeft.run.markdown import md_table

ZERO = RESULTS / "head_bias" / "zero"
TABLES = RESULTS / "tables_cpu"
ORDER = [*MAIN_ROWS, "Strategy transfer from RTE", "Strategy transfer from CoLA", "Architecture transfer from RTE",
         "Architecture transfer from CoLA"]


def pearson_by_label(root: Path, seed: int = 1) -> dict[str, float]:
    """{method label: dev Pearson ×100} of the finished STS-B MiniLM-L6 runs of `seed` under `root`."""
    runs = collect_runs(root)
    if runs.empty:
        return {}
    d = runs[runs["complete"] & (runs["task"] == "stsb") & (runs["model"] == "minilm_l6") & (runs["seed"] == seed)]
    return {str(r.label): 100 * float(r.value) for r in d.itertuples()}


def _cell(value: float | None) -> str:
    if value is None:
        return "—"
    bound = 100 * chance_bound("stsb", "pearson")
    return f"{value:.1f}".replace("-", MINUS) + (" †" if at_chance(value, bound, "pearson") else "")


def table(zero: dict[str, float], mean: dict[str, float]) -> str:
    labels = [l for l in ORDER if l in zero or l in mean] + sorted((set(zero) | set(mean)) - set(ORDER))
    rows = [[l, _cell(zero.get(l)), _cell(mean.get(l)),
             signed(mean[l] - zero[l], 1) if l in zero and l in mean else "—"] for l in labels]
    head = ["Method", "head bias at 0", "head bias at the labels' mean", "Δ (points)"]
    return "\n".join(md_table(head, rows, [":--", "--:", "--:", "--:"]))


def main(argv: list[str]) -> int:
    if "--report" not in argv:
        print("usage: python -m benchmarks.head_bias --report", file=sys.stderr)
        return 2
    print(table(pearson_by_label(ZERO), pearson_by_label(TABLES)))
    return 0
