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

from prunepeft.run.io import read_json
from prunepeft.run.sweep import latest_summary

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

    summary = read_json(latest_summary(tmp_path / "sweeps/search"))
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

    # a re-launched sweep skips the finished jobs; with a third task whose data is missing, those jobs
    # fail without stopping the others (joblib), the summary lists all 12, and the sweep exits 2
    partial = tmp_path / "partial_glue"
    partial.mkdir()
    for task in ("rte", "wnli"):
        (partial / task).symlink_to(glue_dir / task)
    again = _sweep("baseline", [*lora, "task=rte,wnli,cola", f"data.dir={partial}"], glue_dir, tmp_path)
    assert again.returncode == 2 and again.stdout.count("already finished") == 8, again.stderr[-3000:]
    rows = read_json(latest_summary(tmp_path / "sweeps/baseline"))
    assert sorted(r["status"] for r in rows) == ["done"] * 8 + ["failed"] * 4
    assert all(r["swept"]["task"] == "cola" for r in rows if r["status"] == "failed")


# -- in-process sweeps: failure tolerance, swept keys in directory names, this sweep's summary -------

def _main(argv, monkeypatch):
    """`prunepeft <argv>` in this process; returns the exit code."""
    from hydra.core.global_hydra import GlobalHydra

    from prunepeft import cli

    monkeypatch.setattr(sys, "argv", ["prunepeft", *argv])
    try:
        cli.main(argv)
        code = 0
    except SystemExit as stop:
        code = stop.code
    finally:
        GlobalHydra.instance().clear()
    return code


def _rte_only(glue_dir: Path, tmp_path: Path) -> Path:
    """A data dir with RTE but no WNLI: the WNLI job of a sweep fails at run time (missing data)."""
    data = tmp_path / "glue"
    data.mkdir()
    (data / "rte").symlink_to(glue_dir / "rte")
    return data


def test_a_failing_job_does_not_stop_the_sweep(glue_dir, tmp_path, monkeypatch):
    """Basic launcher, in process (the joblib case is in the subprocess test above)."""
    sweep = tmp_path / "sweep"
    argv = ["baseline", "-m", "model=tiny_bert", "train=test", "method=lora", "task=rte,wnli",
            f"data.dir={_rte_only(glue_dir, tmp_path)}", "data.train_subset=16", "data.eval_subset=8",
            f"hydra.sweep.dir={sweep}"]
    assert _main(argv, monkeypatch) == 2
    rows = {row["swept"]["task"]: row for row in read_json(latest_summary(sweep))}
    assert rows["rte"]["status"] == "done" and rows["rte"]["value"] is not None
    assert rows["wnli"]["status"] == "failed" and "missing data file" in rows["wnli"]["error"]
    table = latest_summary(sweep).with_name("sweep_summary.md").read_text()
    assert "| job | task | status |" in table and "2 jobs: 1 done, 1 failed" in table


def test_swept_keys_name_the_job_dirs_and_the_summary_is_this_sweeps(glue_dir, tmp_path, monkeypatch):
    sweep = tmp_path / "sweep"
    base = ["baseline", "-m", "model=tiny_bert", "train=test", "task=rte", f"data.dir={glue_dir}",
            "data.train_subset=16", "data.eval_subset=8", f"hydra.sweep.dir={sweep}"]
    # two values of a key that is not a path component: two directories, not one collision
    assert _main([*base, "method=lora", "lora_r=2,4", "seed=range(1,2)"], monkeypatch) == 0
    dirs = sorted(p.parent.name for p in sweep.rglob("DONE"))
    assert dirs == ["lora_lora_r=2-s1", "lora_lora_r=4-s1"]
    first = latest_summary(sweep)
    first_text = first.read_text()
    # a later sweep into the same sweep dir lists only its own jobs, in a directory of its own
    assert _main([*base, "method=head", "seed=1,2"], monkeypatch) == 0
    rows = read_json(latest_summary(sweep))
    assert [(r["swept"]["seed"], r["status"]) for r in rows] == [("1", "done"), ("2", "done")]
    assert all("/head-s" in r["dir"] for r in rows)
    # the earlier sweep's summary is kept, unchanged
    assert latest_summary(sweep).parent != first.parent and first.read_text() == first_text
    assert sorted(p.parent for p in sweep.glob("sweeps/*/sweep_summary.md")) == sorted(
        [first.parent, latest_summary(sweep).parent])


def test_an_invalid_value_fails_only_its_own_jobs(glue_dir, tmp_path, monkeypatch, capsys):
    """A value the command refuses (here an unknown method) fails its jobs with the one-line reason;
    the other jobs run; the sweep exits 2 at the end. A typo in a key still stops the sweep at once."""
    sweep = tmp_path / "sweep"
    base = ["baseline", "-m", "model=tiny_bert", "train=test", "task=rte", f"data.dir={glue_dir}",
            "data.train_subset=16", "data.eval_subset=8", f"hydra.sweep.dir={sweep}"]
    assert _main([*base, "method=head,nope"], monkeypatch) == 2
    err = capsys.readouterr().err
    assert "warning: the jobs with method=nope will fail: unknown method 'nope'" in err and "Traceback" not in err
    rows = {row["swept"]["method"]: row for row in read_json(latest_summary(sweep))}
    assert rows["head"]["status"] == "done"
    assert rows["nope"]["status"] == "failed" and rows["nope"]["error"].startswith("unknown method 'nope'")
    assert "\n" not in rows["nope"]["error"]

    typo = tmp_path / "typo"
    assert _main([*base[:-1], f"hydra.sweep.dir={typo}", "method=head,lora", "trian.epochs=1"], monkeypatch) == 2
    err = capsys.readouterr().err
    assert "trian" in err and "Traceback" not in err and not typo.exists()
    # every value refused: nothing would run, so the sweep stops before any job
    assert _main([*base[:-1], f"hydra.sweep.dir={typo}", "method=nope,nada"], monkeypatch) == 2
    assert "unknown method 'nope'" in capsys.readouterr().err and not typo.exists()


def test_an_impossible_budget_in_a_sweep_is_left_to_its_jobs(capsys):
    """The issue's case: `budget.params=5,2000` refuses only the jobs of 5 (below the smallest unit)."""
    from prunepeft import cli

    error = cli.validate_overrides("search", ["-m", "model=tiny_bert", "budget.params=5,2000"])
    assert error is None
    assert "warning: the jobs with budget.params=5 will fail:" in capsys.readouterr().err
    single = cli.validate_overrides("search", ["model=tiny_bert", "budget.params=5"])
    assert single is not None and "budget" in single


def test_a_job_refused_by_its_pre_run_checks_does_not_end_the_sweep(glue_dir, tmp_path, monkeypatch):
    """In a multirun the pre-run checks (here: the run directory holds a run with another
    configuration) raise instead of `sys.exit`: the job fails, the next one runs, the sweep exits 2."""
    import json

    sweep = tmp_path / "sweep"
    taken = sweep / "rte" / "tiny_bert" / "head-s1"
    taken.mkdir(parents=True)
    (taken / "run.json").write_text(json.dumps({"status": "failed", "config": {"seed": 1, "method": "lora"}}))
    argv = ["baseline", "-m", "model=tiny_bert", "train=test", "method=head", "task=rte", "seed=1,2",
            f"data.dir={glue_dir}", "data.train_subset=16", "data.eval_subset=8", f"hydra.sweep.dir={sweep}"]
    assert _main(argv, monkeypatch) == 2
    rows = {row["swept"]["seed"]: row for row in read_json(latest_summary(sweep))}
    assert rows["1"]["status"] == "failed" and "different configuration" in rows["1"]["error"]
    assert rows["2"]["status"] == "done" and (sweep / "rte" / "tiny_bert" / "head-s2" / "DONE").exists()
    assert json.loads((taken / "run.json").read_text())["config"]["method"] == "lora"  # left as it was


# -- a dead job is stale, not running --------------------------------------------------------------

def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _running_run(run_dir: Path, lock: dict | None) -> None:
    import json

    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "run.json").write_text(json.dumps({"status": "running", "config": {}}))
    if lock is not None:
        (run_dir / ".lock").write_text(json.dumps(lock))


def test_a_run_whose_process_died_is_stale(tmp_path):
    import socket

    from prunepeft.run.record import RunLock
    from prunepeft.run.sweep import job_status

    here = socket.gethostname()
    killed = tmp_path / "killed"  # SIGKILL leaves the lock file naming a pid that is gone
    _running_run(killed, {"pid": _dead_pid(), "host": here, "since": "x"})
    row = job_status(killed)
    assert row["status"] == "stale" and "is gone" in row["error"]

    alive = tmp_path / "alive"  # the lock is held (here by this process): running
    _running_run(alive, None)
    lock = RunLock(alive)
    lock.acquire()
    try:
        assert job_status(alive)["status"] == "running"
    finally:
        lock.release()
    # released (emptied) but run.json never updated: nobody holds it
    assert job_status(alive)["status"] == "stale"

    elsewhere = tmp_path / "elsewhere"  # another host's pid cannot be checked from here
    _running_run(elsewhere, {"pid": _dead_pid(), "host": here + "-other", "since": "x"})
    assert job_status(elsewhere)["status"] == "running"


def test_sweep_summary_lists_dead_jobs_as_stale(tmp_path):
    import json
    import socket

    from prunepeft.run.sweep import write_summary

    sweep = tmp_path / "sweep"
    record = sweep / "sweeps" / "s1"
    record.mkdir(parents=True)
    (record / "sweep.json").write_text(json.dumps({"id": "s1", "swept": ["seed"]}))
    here = socket.gethostname()
    # job 0 died inside its run (lock names a dead pid); job 1 died before its run started
    _running_run(sweep / "a", {"pid": _dead_pid(), "host": here, "since": "x"})
    for num, name in enumerate("ab"):
        (record / f"job-{num:05d}.json").write_text(json.dumps(
            {"num": num, "dir": str(sweep / name), "overrides": {"seed": str(num)}, "status": "running",
             "pid": _dead_pid(), "host": here}))
    rows = write_summary(sweep, "s1")
    assert [r["status"] for r in rows] == ["stale", "stale"]
    assert "2 jobs: 0 done, 0 failed, 2 stale" in (record / "sweep_summary.md").read_text()


def test_two_sweeps_side_by_side_into_one_dir_keep_their_own_jobs(tmp_path):
    """`make table2 & make table5` into one runs root: each job is recorded in its own sweep, named in the job's
    own config, not in the one the shared `sweeps/current.json` names (the other sweep's, once it started)."""
    from omegaconf import OmegaConf

    from prunepeft.run.sweep import SWEEP_ID_ENV, SweepSummary, summary_dir

    sweep = tmp_path / "runs"

    def start() -> tuple[SweepSummary, str]:
        callback = SweepSummary()
        master = OmegaConf.create({"hydra": {"sweep": {"dir": str(sweep)}, "overrides": {"task": ["seed=1"], "hydra": []},
                                             "sweeper": {"params": {}}}})
        callback.on_multirun_start(master)
        (added,) = master.hydra.overrides.hydra  # every job of this sweep is composed with it
        key, value = added.split("=", 1)
        assert key == f"++hydra.job.env_set.{SWEEP_ID_ENV}"
        return callback, value.strip("'")

    def job(sweep_id: str | None) -> object:
        env = {SWEEP_ID_ENV: sweep_id} if sweep_id else {}
        return OmegaConf.create({"sweep": {"dir": str(sweep)}, "job": {"num": 0, "env_set": env},
                                 "overrides": {"task": ["seed=1"]}, "runtime": {"output_dir": str(sweep / "a-s1")}})

    first_cb, first = start()
    _, second = start()  # another process's sweep starts: the pointer now names it
    assert read_json(sweep / "sweeps" / "current.json")["id"] == second != first
    assert first_cb._record(job(first), status="finished", error=None) == (sweep, first)
    assert (summary_dir(sweep, first) / "job-00000.json").exists()
    assert not (summary_dir(sweep, second) / "job-00000.json").exists()
    # a job launched without the override (or naming no sweep here) falls back to the pointer
    assert SweepSummary._current(job(None)) == (sweep, second)
    assert SweepSummary._current(job("20000101-000000-1")) == (sweep, second)
