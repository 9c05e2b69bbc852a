"""Faults while a search runs: kills at exact points, damaged files, other data, a second invocation, signals.

Each test runs a problem of the reliability review (P5-P10, P16, P17) through the real CLI
(`cli.main`, in-process: Hydra, the lock, the signal handlers and the exit codes all take part) and
asserts the exit code, the one-line message, the absence of a traceback and the run directory
afterwards: the resumed (or restarted) run must end exactly like an uninterrupted one (`reference`).
Kills land at exact points through `debug.kill_at` (never timed). In-process, SIGKILL is replaced
by an exception that no command code catches for good (`Killed`); the files it leaves are the
files a SIGKILL leaves, except that run.json says `failed` (real SIGKILLs at >= 20 points:
benchmarks/faults.py). SIGTERM and SIGINT are real signals. Real second processes hold the run's
lock. Shared helpers: tests/faults_helpers.py.
"""
from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from faults_helpers import _finished_copy, _truncate, one_line, run_cli, same_result
from faults_helpers import reference, search_args  # noqa: F401  (pytest fixtures)

from conftest import Killed  # and the simulated_kill fixture
from prunepeft import cli
from prunepeft.run import faults
from prunepeft.run import io as pio
from prunepeft.run import record as runs
from prunepeft.run.io import read_json, read_jsonl




def killed_run(search_args, run_dir: Path, point: str, capsys) -> None:
    with pytest.raises(Killed):
        cli.main([*search_args, f"hydra.run.dir={run_dir}", f"debug.kill_at={point}"])
    capsys.readouterr()
    assert not (run_dir / "DONE").exists()


# -- P8: the checkpoint is one atomic unit ------------------------------------------------------
def test_kill_between_checkpoint_writes_resumes_identically(search_args, reference, tmp_path, capsys,
                                                            simulated_kill):
    run_dir = tmp_path / "run"
    killed_run(search_args, run_dir, "between_checkpoint_writes:2", capsys)  # round 1's save
    ckpt = run_dir / "checkpoint"
    state = read_json(ckpt / "state.json")
    assert state["generation"] == 1 and state["rounds_done"] == 0  # the warm-up's commit stands
    assert (ckpt / state["weights"]).exists() and (ckpt / "supernet-00002.safetensors").exists()
    code, _, _ = run_cli([*search_args, f"hydra.run.dir={run_dir}"], capsys)
    assert code == 0
    same_result(run_dir, reference)
    assert [p.name for p in ckpt.glob("supernet*")] == [read_json(ckpt / "state.json")["weights"]]
    # events of the killed attempt are told apart from the resumed one's
    assert {e.get("attempt") for e in read_jsonl(run_dir / "events.jsonl")} == {1, 2}


# -- P6, P7, P16, P9: damaged files get one message and a way out ---------------------------------
@pytest.fixture(scope="module")
def killed_template(search_args, tmp_path_factory) -> Path:
    """A run killed right after round 1 was committed (warm-up and one round on disk)."""
    run_dir = tmp_path_factory.mktemp("killed") / "run"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(faults, "_kill", lambda signum: (_ for _ in ()).throw(Killed()))
        with pytest.raises(Killed):
            cli.main([*search_args, f"hydra.run.dir={run_dir}", "debug.kill_at=after_checkpoint:2"])
    assert read_json(run_dir / "checkpoint" / "state.json")["rounds_done"] == 1
    return run_dir


@pytest.fixture
def killed_in_round(killed_template, tmp_path, capsys) -> Path:
    """A fresh copy of `killed_template` for a test to damage or resume."""
    capsys.readouterr()
    return Path(shutil.copytree(killed_template, tmp_path / "killed"))


@pytest.mark.parametrize("damage,named", [
    (lambda d: _truncate(next((d / "checkpoint").glob("supernet-*"))), "supernet-"),
    (lambda d: _truncate(d / "checkpoint" / "state.json"), "state.json"),
    (lambda d: _truncate(d / "run.json"), "run.json"),
    (lambda d: (d / "rounds.jsonl").write_text("{\"round\": 1\n{}\n"), "rounds.jsonl"),
], ids=["P7-weights", "P6-state", "P16-run.json", "rounds-middle"])
def test_damaged_file_one_message_with_recovery(search_args, killed_in_round, capsys, damage, named):
    damage(killed_in_round)
    before = {p: p.read_bytes() for p in killed_in_round.rglob("*") if p.is_file() and p.suffix != ".log"}
    code, _, err = run_cli([*search_args, f"hydra.run.dir={killed_in_round}"], capsys)
    line = one_line(err)
    assert code == 2 and named in line and "restart=true" in line, line
    after = {p: p.read_bytes() for p in killed_in_round.rglob("*") if p.is_file() and p.suffix != ".log"}
    assert after == before  # refused before anything was written


def test_restart_moves_old_files_aside_and_starts_over(search_args, killed_in_round, reference, capsys):
    _truncate(killed_in_round / "checkpoint" / "state.json")
    code, _, err = run_cli([*search_args, f"hydra.run.dir={killed_in_round}", "restart=true"], capsys)
    assert code == 0, err
    aside = list((killed_in_round / ".aside").iterdir())
    assert len(aside) == 1 and (aside[0] / "checkpoint" / "state.json").exists()
    same_result(killed_in_round, reference)
    assert read_json(killed_in_round / "run.json")["attempts"] == 1


def test_torn_rounds_line_is_cut_off_on_resume(search_args, killed_in_round, reference, capsys):
    """P9: half a row appended without its newline; every later round must stay readable."""
    with open(killed_in_round / "rounds.jsonl", "a") as fh:
        fh.write('{"round": 2, "active_bef')
    code, _, err = run_cli([*search_args, f"hydra.run.dir={killed_in_round}"], capsys)
    assert code == 0, err
    same_result(killed_in_round, reference)
    assert all(json.loads(line) for line in (killed_in_round / "rounds.jsonl").read_text().splitlines())


# -- P17: resume on other data ------------------------------------------------------------------
def test_resume_with_different_data_is_refused_naming_the_split(search_args, killed_in_round, glue_dir,
                                                                 tmp_path, capsys):
    import pandas as pd

    flipped = tmp_path / "glue" / "rte"
    flipped.mkdir(parents=True)
    for split in ("train", "validation", "test"):
        shutil.copy(glue_dir / "rte" / f"{split}.parquet", flipped / f"{split}.parquet")
    frame = pd.read_parquet(flipped / "train.parquet")
    frame["label"] = 1 - frame["label"]
    frame.to_parquet(flipped / "train.parquet")
    code, _, err = run_cli([*search_args, f"hydra.run.dir={killed_in_round}", f"data.dir={flipped.parent}"], capsys)
    line = one_line(err)
    assert code == 2 and "different data" in line and "train:" in line and "validation" not in line, line
    # the same content under another directory is fine
    shutil.copy(glue_dir / "rte" / "train.parquet", flipped / "train.parquet")
    code, _, err = run_cli([*search_args, f"hydra.run.dir={killed_in_round}", f"data.dir={flipped.parent}"], capsys)
    assert code == 0, err


# -- P10: one invocation per directory ------------------------------------------------------------
HOLD = textwrap.dedent("""
    import sys, time
    from prunepeft.run.record import RunLock
    RunLock(sys.argv[1]).acquire()
    print("locked", flush=True)
    time.sleep(60)
""")


def test_second_invocation_refused_while_another_process_holds_the_run(search_args, reference, tmp_path, capsys):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(run_dir)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        code, _, err = run_cli([*search_args, f"hydra.run.dir={run_dir}"], capsys)
        line = one_line(err)
        assert code == 2 and f"pid {holder.pid}" in line and socket.gethostname() in line, line
        assert not (run_dir / "run.json").exists() and not (run_dir / "events.jsonl").exists()
        # re-displaying a finished run takes no lock, so it works while the lock is held
        shutil.copytree(reference, tmp_path / "done", ignore=shutil.ignore_patterns(".lock"))
        holder2 = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path / "done")], stdout=subprocess.PIPE,
                                   text=True)
        try:
            assert holder2.stdout.readline().strip() == "locked"
            code, out, err = run_cli([*search_args, f"hydra.run.dir={tmp_path / 'done'}"], capsys)
            assert code == 0 and "already finished" in out, err
        finally:
            holder2.kill()
            holder2.wait()
    finally:
        holder.kill()
        holder.wait()
    # the holder died without unlocking: the next invocation takes the stale lock over, with a message
    note = runs.RunLock(run_dir).acquire()
    assert note and f"pid {holder.pid}" in note and "is gone" in note


# -- P5 and SIGTERM: interrupted, one line, resumable ---------------------------------------------
@pytest.mark.parametrize("sig,code", [("TERM", 143), ("INT", 130)])
def test_signal_marks_interrupted_and_resumes(search_args, reference, tmp_path, capsys, sig, code):
    run_dir = tmp_path / "run"
    got, _, err = run_cli([*search_args, f"hydra.run.dir={run_dir}", f"debug.kill_at=after_checkpoint:2:{sig}"],
                          capsys)
    assert got == code and one_line(err) == "interrupted: re-run the same command to resume"
    assert read_json(run_dir / "run.json")["status"] == "interrupted"
    assert not (run_dir / ".lock").read_bytes()  # released
    if sig == "TERM":  # one resume is enough to show the directory is intact
        assert run_cli([*search_args, f"hydra.run.dir={run_dir}"], capsys)[0] == 0
        same_result(run_dir, reference)


# -- issue 25: a lock file whose JSON is not an owner record is stale -----------------------------
@pytest.mark.parametrize("record", ["[1, 2]", "\"text\"", "null", "42", "{\"pid\": \"x\"}", "{\"pid\": -5}", "{tor"])
def test_lock_holding_json_that_is_not_an_owner_record(search_args, reference, tmp_path, capsys, record):
    run_dir = _finished_copy(reference, tmp_path)
    (run_dir / "DONE").unlink()  # an unfinished-looking run: the lock is taken
    (run_dir / ".lock").write_text(record)
    assert runs.RunLock(run_dir)._holder() == ({} if record.startswith(("[", "\"", "n", "4", "{t")) else json.loads(record))
    from prunepeft.run.lock import dead_owner

    assert dead_owner(run_dir) is not None  # nobody holds it: stale, never a traceback
    lock = runs.RunLock(run_dir)
    assert lock.acquire() is None  # no owner named: nothing to take over
    lock.release()
    assert pio.read_run_file(run_dir / ".lock", "lock") == {}  # a clean release clears the record
