"""A real multirun with the joblib launcher on tiny_bert (two tasks x two seeds), then the report.

One subprocess test per sweep (each job is a process): the search sweep covers Table 5's rows
(hybrid and random), the baseline sweep Table 2's LoRA column; `prunepeft report` builds both tables
from the run outputs, and the sweep callback writes its summary.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from prunepeft.io import read_json

BIN = Path(sys.executable).parent / "prunepeft"
COMMON = ["model=tiny_bert", "train=test", "data.train_subset=48", "data.eval_subset=24", "task=rte,wnli",
          "seed=1,2", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]
SEARCH = ["search.warmup.subset=24", "search.warmup.epochs=1", "search.warmup.snapshots=2",
          "search.retrain_epochs=1", "budget.params=2000"]


def _sweep(command: str, args: list[str], glue_dir: Path, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PRUNEPEFT_DATA_DIR": str(glue_dir)}
    return subprocess.run([str(BIN), command, "-m", *COMMON, *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


@pytest.mark.subprocess
def test_joblib_multirun_then_report_tables_2_and_5(glue_dir, tmp_path):
    search = _sweep("search", [*SEARCH, "strategy=hybrid,random",
                               "hydra.sweep.dir=sweeps/search"], glue_dir, tmp_path)
    assert search.returncode == 0, search.stderr[-3000:]
    # the paper tuned the lr per task: a sweep over train.lr_peft, the report picks per (method, task)
    lora = ["method=lora", "train.lr_peft=0.001,0.01", "hydra.sweep.dir=sweeps/baseline",
            "hydra.sweep.subdir=${task.name}/${method}/lr${train.lr_peft}-s${seed}"]
    baseline = _sweep("baseline", lora, glue_dir, tmp_path)
    assert baseline.returncode == 0, baseline.stderr[-3000:]

    summary = read_json(tmp_path / "sweeps/search/sweep_summary.json")
    assert len(summary) == 8 and all(row["status"] == "done" for row in summary)
    runs = sorted((tmp_path / "sweeps").rglob("DONE"))
    assert len(runs) == 8 + 8

    report = subprocess.run([str(BIN), "report", "runs=sweeps", "out=reports", "tables=[table2,table5]",
                             "figures=false"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert report.returncode == 0, report.stderr[-3000:]
    table5 = (tmp_path / "reports/table5.md").read_text()
    table2 = (tmp_path / "reports/table2.md").read_text()
    rows5 = {line.split("|")[2].strip(): line for line in table5.splitlines() if line.startswith("| tiny_bert")}
    rows2 = {line.split("|")[2].strip(): line for line in table2.splitlines() if line.startswith("| tiny_bert")}
    assert {"Random pruning", "PrunePEFT"} <= set(rows5) and {"LoRA", "PrunePEFT"} <= set(rows2)
    # each cell aggregates the two seeds of its task
    assert rows5["PrunePEFT"].count("(n=2)") >= 2 and rows2["LoRA"].count("(n=2)") >= 2
    assert "Learning rate chosen per (method, task)" in table2

    # a re-launched sweep skips the finished jobs
    again = _sweep("baseline", lora, glue_dir, tmp_path)
    assert again.returncode == 0 and again.stdout.count("already finished") == 8
