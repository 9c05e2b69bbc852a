"""benchmarks/lib/plan.py (`make help`): runs per table target and SCALE from a dry composition, time per run."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from benchmarks.lib import plan as plan_mod

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def targets():
    return plan_mod.read_targets(plan_mod.MK.read_text(encoding="utf-8"))


def _jobs(targets, names, scales=("smoke", "cpu"), **kw):
    plans = plan_mod.plan({n: targets[n] for n in names}, scales, runs=kw.pop("runs", []), **kw)
    return {(p.target, p.scale): p.jobs for p in plans}


def test_run_counts_by_hand(targets):
    jobs = _jobs(targets, ["table2", "table5", "table6"])
    # Table 2: baselines fft, adapter, lora, dora + searches at high and low fidelity + LoRA at equal
    # parameters (claim (a')), on 4 GLUE tasks; smoke 1 seed, cpu 3 seeds.
    assert jobs[("table2", "smoke")] == (4 + 2 + 1) * 4 * 1 == 28
    assert jobs[("table2", "cpu")] == (4 + 2 + 1) * 4 * 3 == 84
    # Table 5 on 2 ablation tasks: 4 strategies + 6 single criteria + the type-matched random arm + the
    # warm-retrain PrunePEFT and the equal-compute LoRA (issue 22, item 5).
    assert jobs[("table5", "smoke")] == (4 + 6 + 1 + 2) * 2 * 1 == 26
    assert jobs[("table5", "cpu")] == (4 + 6 + 1 + 2) * 2 * 3 == 78
    # Table 6: sources (rte, cola, sst2, stsb), strategy transfer and architecture transfer (2 targets x 2 sources)
    assert jobs[("table6", "smoke")] == 4 + 4 + 4 == 12
    assert jobs[("table6", "cpu")] == (4 + 4 + 4) * 3 == 36


def test_make_variables_change_the_count():
    targets = plan_mod.read_targets(plan_mod.MK.read_text(encoding="utf-8"), {"CRITERIA": "weight,taylor"})
    jobs = _jobs(targets, ["table5"], ("cpu",), seeds="1")
    assert jobs[("table5", "cpu")] == (4 + 2 + 1 + 2) * 2 * 1


def test_time_per_run_from_matching_runs_only(targets):
    base = {"command": "search", "model": "minilm_l6", "device": "cpu", "subset": 2000.0, "epochs": 2.0}
    runs = [{**base, "arm": "hybrid", "task": "sst2", "wall_s": 100.0, "path": "a"},
            {**base, "arm": "random", "task": "cola", "wall_s": 300.0, "path": "b"},
            {**base, "arm": "hybrid", "task": "rte", "wall_s": 9999.0, "path": "c"},  # not a Table 5 task
            {**base, "arm": "hybrid", "task": "sst2", "device": "cuda", "wall_s": 9999.0, "path": "d"},
            {**base, "arm": "hybrid", "task": "sst2", "subset": 500.0, "wall_s": 9999.0, "path": "e"},
            {**base, "arm": "single", "task": "sst2", "wall_s": 50.0, "path": "f"}]
    (cpu, smoke) = sorted(plan_mod.plan({"table5": targets["table5"]}, ("cpu", "smoke"), runs=runs),
                          key=lambda p: p.scale)
    assert smoke.time_text() == "not measured"
    # line 1 (24 runs): median(100, 300) = 200 s; line 2, single criteria (36 runs): 50 s; line 3 (type-matched
    # random): not measured; line 4, the warm-retrain hybrid (6 runs): hybrid's 100 s; line 5 (LoRA): not measured
    assert cpu.measured == [(24, 200.0), (36, 50.0), (6, 100.0)] and cpu.runs == {"a", "b", "f"}
    # (24 × 200 + 36 × 50 + 6 × 100) / 66 = 109 s
    assert cpu.time_text() == "≈ 2 min/run (from 3 measured runs) for 66 of the 78 runs"


@pytest.mark.skipif(shutil.which("make") is None, reason="no make")
def test_help_works_without_a_venv():
    out = subprocess.run(["make", "-s", "help", "VENV=/nonexistent-venv"], cwd=REPO, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0 and "table5" in out.stdout and "after make install" in out.stdout
