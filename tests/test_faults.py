"""Faults: kills at exact points, damaged files, concurrent invocations, signals, NaN, bad inputs.

Each test runs a problem of the reliability review (P1-P19) through the real CLI (`cli.main`,
in-process: Hydra, the lock, the signal handlers and the exit codes all take part) and asserts
the exit code, the one-line message, the absence of a traceback and the run directory afterwards.
Kills land at exact points through `debug.kill_at` (never timed). In-process, SIGKILL is replaced
by an exception that no command code catches for good (`Killed`); the files it leaves are the
files a SIGKILL leaves, except that run.json says `failed` (real SIGKILLs at >= 20 points:
benchmarks/faults.py). SIGTERM and SIGINT are real signals. Real second processes hold the run's
lock, and a real read-only bind mount (`unshare -m`) holds the read-only runs.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import Killed  # and the simulated_kill fixture
from prunepeft import cli
from prunepeft.run import faults
from prunepeft.run import record as runs
from prunepeft.run.io import read_json, read_jsonl

TINY = ["task=rte", "model=tiny_bert", "train=test", "data.train_subset=64", "data.eval_subset=32"]
SEARCH = ["search.warmup.subset=32", "search.warmup.epochs=1", "search.warmup.snapshots=2",
          "search.retrain_epochs=1", "budget.params=2000", "search.k=2"]


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    """`prunepeft <args>` in-process: (exit code, stdout, stderr)."""
    try:
        cli.main([str(a) for a in args])
        code = 0
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    out, err = capsys.readouterr()
    return code, out, err


def one_line(err: str) -> str:
    """The single message line of stderr (warnings of libraries filtered out); no traceback."""
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith(("error:", "interrupted:"))]
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture(scope="module")
def search_args(glue_dir) -> list[str]:
    return ["search", *TINY, f"data.dir={glue_dir}", *SEARCH]


@pytest.fixture(scope="module")
def reference(search_args, tmp_path_factory) -> Path:
    """One uninterrupted search: every resumed run must end exactly like it."""
    run_dir = tmp_path_factory.mktemp("faults") / "ref"
    try:
        cli.main([*search_args, f"hydra.run.dir={run_dir}"])
    except SystemExit as stop:
        assert not stop.code
    assert (run_dir / "DONE").exists()
    return run_dir


def killed_run(search_args, run_dir: Path, point: str, capsys) -> None:
    with pytest.raises(Killed):
        cli.main([*search_args, f"hydra.run.dir={run_dir}", f"debug.kill_at={point}"])
    capsys.readouterr()
    assert not (run_dir / "DONE").exists()


def same_result(run_dir: Path, reference: Path) -> None:
    assert read_json(run_dir / "found_config.json") == read_json(reference / "found_config.json")
    assert read_json(run_dir / "summary.json")["metrics"] == read_json(reference / "summary.json")["metrics"]
    assert [r["removed"] for r in read_jsonl(run_dir / "rounds.jsonl")] == \
        [r["removed"] for r in read_jsonl(reference / "rounds.jsonl")]


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


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


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


# -- P14, P15: NaN ---------------------------------------------------------------------------------
def test_nan_baseline_fails_naming_phase_step_and_lrs(glue_dir, tmp_path, capsys):
    run_dir = tmp_path / "nan"
    args = ["baseline", *TINY, f"data.dir={glue_dir}", "method=lora", "train.lr_peft=1e30", "train.lr_head=1e30"]
    code, _, err = run_cli([*args, f"hydra.run.dir={run_dir}"], capsys)
    line = one_line(err)
    assert code == 1 and "diverged" in line and "'train'" in line and "at step" in line and "lr_peft=1e+30" in line
    info = read_json(run_dir / "run.json")
    assert info["status"] == "failed" and "diverged" in info["error"]
    assert not (run_dir / "summary.json").exists() and not (run_dir / "DONE").exists()


def test_nan_search_names_the_warmup_not_a_criterion(search_args, tmp_path, capsys):
    run_dir = tmp_path / "nan"
    code, _, err = run_cli([*search_args, f"hydra.run.dir={run_dir}", "train.lr_peft=1e30", "train.lr_head=1e30",
                            "search.warmup.subset=64", "search.warmup.snapshots=1"], capsys)
    line = one_line(err)
    assert code == 1 and "'warmup'" in line and "criterion" not in line, line
    assert read_json(run_dir / "run.json")["status"] == "failed"


def test_allowed_nonfinite_steps_are_skipped_and_summary_is_strict_json(glue_dir, tmp_path, capsys):
    run_dir = tmp_path / "skip"
    args = ["baseline", *TINY, f"data.dir={glue_dir}", "method=lora", "train.lr_peft=1e30", "train.lr_head=1e30",
            "train.max_nonfinite_steps=1000", f"hydra.run.dir={run_dir}"]
    code, _, err = run_cli(args, capsys)
    assert code == 0, err
    text = (run_dir / "summary.json").read_text()
    json.loads(text, parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))
    assert any(e["kind"] == "nonfinite" for e in read_jsonl(run_dir / "events.jsonl"))


# -- P1-P4, P11-P13, P18, P19: inputs -------------------------------------------------------------
@pytest.mark.parametrize("override,expected", [
    ("data.train_subset=0", "data.train_subset=0"),
    ("data.eval_subset=0", "data.eval_subset=0"),
    ("search.warmup.subset=0", "search.warmup.subset=0"),
    ("data.train_subset=1.5", "data.train_subset=1.5 is neither a count"),
    ("data.train_subset=100000", "data.train_subset=100000 exceeds the"),
    ("model.local=/nonexistent/model", "model.local='/nonexistent/model' cannot be used with model 'tiny_bert'"),
    ("debug.kill_at=nowhere:1", "debug.kill_at must be"),
])
def test_bad_input_names_its_key(search_args, tmp_path, capsys, override, expected):
    run_dir = tmp_path / "run"
    code, _, err = run_cli([*search_args, override, f"hydra.run.dir={run_dir}"], capsys)
    line = one_line(err)
    assert code == 2 and expected in line, line
    assert not (run_dir / "run.json").exists()


def test_missing_model_local_never_falls_back_to_the_hub(glue_dir, tmp_path, capsys):
    """P4: a pretrained family with a mistyped path is refused before any hub access."""
    code, _, err = run_cli(["search", "task=rte", "model=roberta_base", "train=test", f"data.dir={glue_dir}",
                            f"model.local={tmp_path / 'nope'}", f"hydra.run.dir={tmp_path / 'run'}"], capsys)
    line = one_line(err)
    assert code == 2 and "nope" in line and "does not exist" in line, line


def test_report_lists_an_unreadable_summary_and_refuses_out_as_a_file(reference, tmp_path, capsys):
    runs_dir = tmp_path / "runs"
    for name in ("good", "bad"):
        shutil.copytree(reference, runs_dir / name)
    _truncate(runs_dir / "bad" / "summary.json")
    code, _, err = run_cli(["report", f"runs={runs_dir}", f"out={tmp_path / 'rep'}", "figures=false"], capsys)
    assert code == 0, err
    assert "bad" in err and "summary.json" in err
    index = (tmp_path / "rep" / "report.md").read_text()
    assert "## Runs with unreadable files" in index and "`bad`: summary.json" in index
    (tmp_path / "afile").write_text("x")
    code, _, err = run_cli(["report", f"runs={runs_dir}", f"out={tmp_path / 'afile'}"], capsys)
    assert code == 2 and "is a file" in one_line(err)


READ_ONLY = textwrap.dedent("""
    import json, sys
    from prunepeft import cli
    codes = []
    for args in json.loads(sys.argv[1]):
        try:
            cli.main(args)
            codes.append(0)
        except SystemExit as stop:
            codes.append(stop.code)
        sys.stderr.write("@@\\n")
    print(json.dumps(codes))
""")


def _unshare_works() -> bool:
    if shutil.which("unshare") is None:
        return False
    return subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode == 0


@pytest.mark.subprocess
def test_read_only_output_directory(search_args, reference, tmp_path):
    """P11-P13 on a real read-only bind mount; without `unshare`, EROFS is injected instead."""
    ro = tmp_path / "ro"
    shutil.copytree(reference, ro / "finished", ignore=shutil.ignore_patterns(".lock"))
    shutil.copytree(reference, ro / "unfinished", ignore=shutil.ignore_patterns(".lock", "DONE"))
    cases = [[*search_args, f"hydra.run.dir={ro / 'new'}"], [*search_args, f"hydra.run.dir={ro / 'finished'}"],
             [*search_args, f"hydra.run.dir={ro / 'unfinished'}"]]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    script = [sys.executable, "-c", READ_ONLY, json.dumps(cases)]
    if _unshare_works():
        mount = f"mount --bind {ro} {ro} && mount -o remount,bind,ro {ro} && exec \"$@\""
        cmd = ["unshare", "-m", "sh", "-c", mount, "sh", *script]
    else:  # injected EROFS: every write check and lock open fails as on a read-only mount
        inject = ("import errno, os, prunepeft.commands.common as c; c.writable = lambda p: False\n"
                  "_open = os.open\n"
                  "def ro_open(p, flags, *a, **k):\n"
                  "    if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT): raise OSError(errno.EROFS, 'Read-only file system', p)\n"
                  "    return _open(p, flags, *a, **k)\n"
                  "os.open = ro_open\n")
        cmd = [sys.executable, "-c", inject + READ_ONLY, json.dumps(cases)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    codes = json.loads(proc.stdout.strip().splitlines()[-1])
    errs = proc.stderr.split("@@\n")
    assert codes == [2, 0, 2], proc.stderr[-3000:]
    assert "not writable" in errs[0] and str(ro / "new") in errs[0]
    assert "not writable" in errs[2] and str(ro / "unfinished") in errs[2]
    assert not (ro / "new").exists() and not (ro / "unfinished" / ".lock").exists()


# == issue 25: every run-file read through one guard, writes, inputs ==============================
from prunepeft.run import io as pio  # noqa: E402


def _finished_copy(reference: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(reference, tmp_path / "done", ignore=shutil.ignore_patterns(".lock")))


def _rte_input(path: Path, rows: int = 2) -> Path:
    lines = ["sentence1\tsentence2"] + [f"A man sleeps {i}.\tHe is awake." for i in range(rows)]
    path.write_text("\n".join(lines) + "\n")
    return path


# The file, how it is damaged, and the command that reads it: one line naming the file and the way out.
DAMAGED_READS = [
    ("summary.json", "truncate", "search"),  # the already-finished path
    ("summary.json", "list", "search"),
    ("found_config.json", "truncate", "predict"),
    ("found_config.json", "truncate", "export"),
    ("found_config.json", "truncate", "baseline"),  # method=found run=<dir>
    ("units.safetensors", "truncate", "predict"),
    ("units.safetensors", "truncate", "export"),
    ("head.safetensors", "empty", "evaluate"),
    ("run.json", "truncate", "export"),
    ("run.json", "list", "predict"),
    ("summary.json", "truncate", "evaluate"),
]


@pytest.mark.parametrize("name,damage,command", DAMAGED_READS, ids=[f"{n}-{d}-{c}" for n, d, c in DAMAGED_READS])
def test_damaged_finished_run_file_one_line_naming_it(search_args, reference, glue_dir, tmp_path, capsys,
                                                      name, damage, command):
    run_dir = _finished_copy(reference, tmp_path)
    target = run_dir / name
    if damage == "truncate":
        _truncate(target)
    elif damage == "empty":
        target.write_bytes(b"")
    else:
        target.write_text("[1, 2]\n")
    args = {
        "search": [*search_args, f"hydra.run.dir={run_dir}"],
        "predict": ["predict", f"run={run_dir}", f"input={_rte_input(tmp_path / 'in.tsv')}", f"out={tmp_path / 'o.tsv'}"],
        "export": ["export", f"run={run_dir}", f"out={tmp_path / 'exp'}"],
        "evaluate": ["evaluate", f"run={run_dir}", f"data_dir={glue_dir}"],
        "baseline": ["baseline", *TINY, f"data.dir={glue_dir}", "method=found", f"run={run_dir}",
                     "train.epochs=1", f"hydra.run.dir={tmp_path / 'b'}"],
    }[command]
    code, _, err = run_cli(args, capsys)
    line = one_line(err)
    assert code == 2 and name in line, line
    assert "restart=true" in line or "re-run" in line, line
    assert not (tmp_path / "exp").exists() and not (tmp_path / "o.tsv").exists()


def test_damaged_export_file_says_re_export(reference, tmp_path, capsys):
    code, _, err = run_cli(["export", f"run={reference}", "to=prunepeft", f"out={tmp_path / 'exp'}"], capsys)
    assert code == 0, err
    _truncate(tmp_path / "exp" / "units.safetensors")
    code, _, err = run_cli(["predict", f"run={tmp_path / 'exp'}", f"input={_rte_input(tmp_path / 'in.tsv')}",
                            f"out={tmp_path / 'o.tsv'}"], capsys)
    line = one_line(err)
    assert code == 2 and "units.safetensors" in line and "re-export" in line, line


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


def test_predict_header_only_writes_header_and_empty_file_is_one_line(reference, tmp_path, capsys):
    header_only = _rte_input(tmp_path / "h.tsv", rows=0)
    out = tmp_path / "o.tsv"
    code, _, err = run_cli(["predict", f"run={reference}", f"input={header_only}", f"out={out}"], capsys)
    assert code == 0, err
    assert out.read_text().splitlines() == ["sentence1\tsentence2\tprediction\tlogit_0\tlogit_1"]
    for name in ("e.tsv", "e.csv", "e.jsonl", "e.parquet"):
        (tmp_path / name).write_bytes(b"")
        code, _, err = run_cli(["predict", f"run={reference}", f"input={tmp_path / name}", f"out={out}"], capsys)
        line = one_line(err)
        assert code == 2 and "is empty" in line and name in line, line


class _FullDisk:
    """`os` for prunepeft.run.io whose `replace` fails with ENOSPC for names starting with `prefix`."""

    def __init__(self, prefix: str, error: int) -> None:
        self.prefix, self.error, self.hits = prefix, error, 0

    def __getattr__(self, name):
        return getattr(os, name)

    def replace(self, src, dst):
        if Path(dst).name.startswith(self.prefix):
            self.hits += 1
            raise OSError(self.error, os.strerror(self.error), str(dst))
        return os.replace(src, dst)


@pytest.mark.parametrize("error,words", [("ENOSPC", "no space"), ("EFBIG", "file too large"),
                                         ("EROFS", "read-only")])
def test_write_error_during_checkpoint_is_one_line_and_resumable(search_args, reference, tmp_path, capsys,
                                                                 monkeypatch, error, words):
    import errno

    run_dir = tmp_path / "run"
    disk = _FullDisk("supernet-00002", getattr(errno, error))  # round 1's checkpoint weights
    monkeypatch.setattr(pio, "os", disk)
    code, _, err = run_cli([*search_args, f"hydra.run.dir={run_dir}"], capsys)
    line = one_line(err)
    assert code == 2 and words in line and "supernet-00002" in line and "re-run" in line, line
    assert disk.hits == 1 and not list((run_dir / "checkpoint").glob(".*tmp"))
    monkeypatch.setattr(pio, "os", os)
    code, _, err = run_cli([*search_args, f"hydra.run.dir={run_dir}"], capsys)
    assert code == 0, err
    same_result(run_dir, reference)


def test_write_error_on_an_event_log_is_one_line(search_args, tmp_path, capsys, monkeypatch):
    import builtins
    import errno

    real_open = builtins.open

    def full_open(file, mode="r", *a, **k):
        if "a" in mode and str(file).endswith("events.jsonl"):
            raise OSError(errno.ENOSPC, "No space left on device", str(file))
        return real_open(file, mode, *a, **k)

    monkeypatch.setattr(builtins, "open", full_open)
    code, _, err = run_cli([*search_args, f"hydra.run.dir={tmp_path / 'run'}"], capsys)
    line = one_line(err)
    assert code == 2 and "events.jsonl" in line and "no space" in line, line


@pytest.mark.parametrize("name,make", [
    ("checkpoint", lambda p: p.write_text("not a directory")),
    (".hydra", lambda p: p.write_text("x")),
    ("summary.json", lambda p: p.mkdir()),
])
def test_wrong_path_type_refused_before_any_work(search_args, tmp_path, capsys, name, make):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    make(run_dir / name)
    code, _, err = run_cli([*search_args, f"hydra.run.dir={run_dir}"], capsys)
    line = one_line(err)
    assert code == 2 and name in line, line
    assert not (run_dir / "run.json").exists() and not (run_dir / "events.jsonl").exists()


@pytest.mark.parametrize("override,expected", [
    ("train.lr_peft=-0.001", "train.lr_peft must be finite and > 0"),
    ("train.lr_peft=0", "train.lr_peft must be finite and > 0"),
    ("train.lr_head=nan", "train.lr_head must be finite and > 0"),
    ("train.lr_backbone=inf", "train.lr_backbone must be finite and > 0"),
    ("train.lr_head=-1e-3", "train.lr_head must be finite and > 0"),
])
def test_learning_rates_must_be_finite_and_positive(search_args, glue_dir, tmp_path, capsys, override, expected):
    for args in ([*search_args], ["baseline", *TINY, f"data.dir={glue_dir}", "method=lora"]):
        run_dir = tmp_path / args[0]
        code, _, err = run_cli([*args, override, f"hydra.run.dir={run_dir}"], capsys)
        line = one_line(err)
        assert code == 2 and expected in line, line
        assert not run_dir.exists()


@pytest.mark.parametrize("override", ["task.name=../../../x", "model.name=../up", "strategy.name=a/b",
                                      "task.name=..", "model.name=/abs", "task.name="])
def test_names_that_become_paths_must_be_plain(search_args, glue_dir, tmp_path, capsys, monkeypatch, override):
    """Nothing is created anywhere: the check runs before Hydra makes the run directory (default path)."""
    root = tmp_path / "a" / "b" / "c" / "d"
    root.mkdir(parents=True)
    monkeypatch.chdir(root)
    before = sorted(tmp_path.rglob("*"))
    for args in ([a for a in search_args], ["baseline", *TINY, f"data.dir={glue_dir}", "method=lora"]):
        code, _, err = run_cli([*args, override], capsys)
        line = one_line(err)
        assert code == 2 and override.split("=")[0] in line and "plain name" in line, line
        assert sorted(tmp_path.rglob("*")) == before


def test_plain_names_accept_the_shipped_names():
    from prunepeft.config.compose import compose_config

    cfg = compose_config("search", ["task=rte", "model=tiny_bert", "train=test"])
    cli.check_names(cfg)
    for good in ("rte", "roberta_large", "qwen2.5-0.5b", "Llama-3-8B"):
        runs.check_plain_name("model.name", good)


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_export_killed_mid_write_leaves_nothing_or_the_next_export_removes_it(reference, tmp_path, capsys,
                                                                               monkeypatch, simulated_kill):
    out = tmp_path / "exp"
    monkeypatch.setenv(runs.KILL_AT_ENV, "write:2")
    monkeypatch.setattr(faults, "_env_read", False)
    monkeypatch.setattr(faults, "_kill_at", None)
    with pytest.raises(Killed):
        cli.main(["export", f"run={reference}", "to=prunepeft", f"out={out}"])
    capsys.readouterr()
    assert not out.exists() and list(tmp_path.iterdir()) == []  # in-process the block cleans up
    monkeypatch.delenv(runs.KILL_AT_ENV)
    monkeypatch.setattr(faults, "_env_read", False)
    monkeypatch.setattr(faults, "_kill_at", None)
    # A real SIGKILL runs no cleanup: the temp directory of a dead writer stays until the next export.
    stale = tmp_path / f".exp.{_dead_pid()}.abc123"
    stale.mkdir()
    (stale / "units.safetensors").write_bytes(b"half")
    code, _, err = run_cli(["export", f"run={reference}", "to=prunepeft", f"out={out}"], capsys)
    assert code == 0, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exp"]


def test_report_killed_mid_write_temp_files_are_removed_by_the_next_report(reference, tmp_path, capsys):
    runs_dir = tmp_path / "runs"
    shutil.copytree(reference, runs_dir / "r")
    rep = tmp_path / "rep"
    rep.mkdir()
    pid = _dead_pid()
    stale = [rep / f".report.md.{pid}.x1y2.tmp", rep / f".runs.csv.{pid}.q9.tmp"]
    for p in stale:
        p.write_text("half")
    live = rep / f".report.md.{os.getpid()}.zz.tmp"  # a writer that is still running keeps its file
    live.write_text("mine")
    code, _, err = run_cli(["report", f"runs={runs_dir}", f"out={rep}", "figures=false"], capsys)
    assert code == 0, err
    assert not any(p.exists() for p in stale) and live.exists()


def test_read_run_file_kinds(tmp_path):
    obj = tmp_path / "summary.json"
    obj.write_text("{\"a\": 1}")
    assert pio.read_run_file(obj, "object") == {"a": 1} and pio.read_json(obj) == {"a": 1}
    obj.write_text("[1]")
    with pytest.raises(pio.DamagedRunFile, match="not an object"):
        pio.read_json(obj)  # a contract name must hold an object
    other = tmp_path / "list.json"
    other.write_text("[1]")
    assert pio.read_json(other) == [1]
    with pytest.raises(pio.MissingRunFile, match="missing"):
        pio.read_run_file(tmp_path / "nope.json")
    with pytest.raises(FileNotFoundError):  # still the OS error type for callers that catch it
        pio.read_run_file(tmp_path / "nope.json")
    (tmp_path / "d.json").mkdir()
    with pytest.raises(pio.UnreadableRunFile):
        pio.read_run_file(tmp_path / "d.json")
    bad = tmp_path / "units.safetensors"
    bad.write_bytes(b"\x08\x00\x00")
    with pytest.raises(pio.DamagedRunFile, match="units.safetensors"):
        pio.read_run_file(bad, "safetensors")
    with pytest.raises(ValueError):
        pio.read_run_file(obj, "yaml")
    assert pio.read_run_file(tmp_path / "nolock", "lock") == {}


@pytest.mark.parametrize("command", [["export", "to=prunepeft"], ["report", "figures=false", "tables=[table2]"]],
                         ids=["export", "report"])
def test_real_sigkill_at_each_write_of_export_or_report_then_the_next_run_cleans_up(reference, tmp_path, command):
    """Issue 25: a real SIGKILL (a forked child, no cleanup runs) at each atomic write of the command's
    write phase leaves its temp on disk; the same command again succeeds, removes it, and writes what an
    uninterrupted run writes (`benchmarks/lib/faults.py`, which `python -m benchmarks.faults` runs at
    scale)."""
    import signal

    from benchmarks.lib.faults import write_phase_kills

    if command[0] == "export":
        args = [command[0], f"run={reference}", *command[1:]]
    else:
        shutil.copytree(reference, tmp_path / "runs" / "r")
        args = [command[0], f"runs={tmp_path / 'runs'}", *command[1:]]
    rows = write_phase_kills(args, tmp_path / "out")
    assert len(rows) >= 2, rows  # the write phase has several writes, each one a kill point
    assert all(r["killed"] == -signal.SIGKILL for r in rows), rows
    # Inside the write phase: every kill left a temp (the export's directory, a report's file) ...
    assert all(r["left"] for r in rows), rows
    if command[0] == "export":
        assert all(len(r["left"]) == 1 and r["left"][0].startswith(".out.") for r in rows), rows
    else:
        assert all(any(x.startswith("out/.") and x.endswith(".tmp") for x in r["left"]) for r in rows), rows
    # ... which the next run removes, ending like an uninterrupted run.
    assert all(r["rerun"] == 0 and r["after"] == [] and r["same"] for r in rows), rows
    assert sorted(p.name for p in tmp_path.iterdir()) == (["runs"] if command[0] == "report" else [])
