"""`make tables SCALE=smoke` from nothing: every target of Tables 2-6 runs, then the report, and every
cell of every table is filled (issue 21, Deliver 1). Tiny random models and tens of rows: this proves the
pipeline (sweeps, layouts, stages, transfers, the report), not the numbers.

One subprocess for the whole make (its sweeps run their jobs in-process): minutes, the suite's longest test.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
TABLES = ("table2", "table3", "table4", "table5", "table6")
# Table 4's search columns have nothing to say about a baseline (it has no search): "—" there is the
# table's own "not applicable" (its legend says so), not a missing run.
NOT_APPLICABLE = {("table4", "baseline"): {"Search (epoch-eq.)", "Search (s)", "Warm-up (s)", "Probes (s)",
                                           "Rounds (s)", "Search / retrain", "Search / retrain (epoch-eq.)"}}
BASELINES = {"FFT", "Adapter", "LoRA", "LoRA, equal parameters", "DoRA"}


@pytest.fixture(scope="module")
def smoke(glue_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("smoke")
    runs, reports = root / "runs", root / "reports"
    env = {**os.environ, "PRUNEPEFT_DATA_DIR": str(glue_dir), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    env.pop("MAKEFLAGS", None)
    cli = f"{sys.executable} -m prunepeft.cli"  # the interpreter running the suite (CI's venv)
    proc = subprocess.run(["make", "--no-print-directory", "tables", "SCALE=smoke", f"RUNS={runs}",
                           f"REPORTS={reports}", "TABLES_DEPS=", f"PRUNEPEFT={cli}"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=1500)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return runs, reports, env


def test_every_table_is_written_with_rows(smoke):
    _, reports, _ = smoke
    for name in TABLES:
        for suffix in ("md", "csv", "tex"):
            assert (reports / f"{name}.{suffix}").is_file(), f"{name}.{suffix}"
        assert not pd.read_csv(reports / f"{name}.csv").empty, name


def test_every_cell_is_filled_or_not_applicable(smoke):
    _, reports, _ = smoke
    for name in TABLES:
        df = pd.read_csv(reports / f"{name}.csv")
        method_col = "method" if "method" in df else df.columns[2]
        empty = df[df["n"].fillna(0) < 1]
        for _, cell in empty.iterrows():
            kind = "baseline" if str(cell[method_col]) in BASELINES else "search"
            assert cell["column"] in NOT_APPLICABLE.get((name, kind), set()) or cell["column"] == "Avg", \
                f"{name}: empty cell {cell[method_col]} / {cell['column']}"


def test_tables_hold_what_the_sweeps_ran(smoke):
    _, reports, _ = smoke
    t2 = pd.read_csv(reports / "table2.csv")
    assert {"FFT", "Adapter", "LoRA", "LoRA, equal parameters", "DoRA", "PrunePEFT",
            "PrunePEFT (low fidelity)"} <= set(t2["method"])
    assert {"RTE", "SST-2", "CoLA", "STS-B"} <= set(t2["column"])
    # Claim (a'): LoRA sized to each PrunePEFT run's found parameter count, said under the table.
    assert "LoRA, equal parameters = uniform LoRA sized to the found parameter count" in (reports / "table2.md").read_text()
    t5 = (reports / "table5.md").read_text()
    for row in ("No pruning", "Random pruning", "Random, type-matched", "Single criterion (best:", "No partition",
                "| PrunePEFT |", "| PrunePEFT, warm retrain |", "| LoRA, equal compute |"):
        assert row in t5, row
    # The equal-compute LoRA trained (in whole epochs) about as many examples as its PrunePEFT run did.
    assert "LoRA, equal compute = uniform LoRA at the budget" in t5 and " epochs = " in t5
    t5csv = pd.read_csv(reports / "table5.csv")
    assert set(t5csv["column"]) - {"Avg"} == {"SST-2", "CoLA"}  # the ablation's tasks only
    t6 = pd.read_csv(reports / "table6.csv")
    assert {"Strategy transfer from RTE", "Strategy transfer from CoLA", "Architecture transfer from RTE",
            "Architecture transfer from CoLA"} <= set(t6["method"])
    t3 = (reports / "table3.md").read_text()
    assert "random weights: plumbing only" in t3


def test_a_second_make_skips_every_finished_run(smoke):
    runs, reports, env = smoke
    before = {p: p.stat().st_mtime_ns for p in runs.rglob("summary.json")}
    # table2 28 (16 baselines + 8 searches + 4 LoRA at equal parameters), table3 3, table4 0 new, table5 24 new
    # (its hybrid runs are table2's), table6 8 new (4 strategy transfers + 4 architecture transfers; the
    # sources are table2's)
    assert len(before) == 63
    proc = subprocess.run(["make", "--no-print-directory", "table3", "SCALE=smoke", f"RUNS={runs}",
                           f"REPORTS={reports}", "TABLES_DEPS=", f"PRUNEPEFT={sys.executable} -m prunepeft.cli"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "already finished" in proc.stdout
    assert {p: p.stat().st_mtime_ns for p in runs.rglob("summary.json")} == before
