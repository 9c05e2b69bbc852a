"""Faults in the files around a run: damaged finished-run files, empty inputs, failed and killed writes.

Each test runs a problem of the reliability review (P11-P13) or of issue 25 (every run-file read
through one guard, writes) through the real CLI (`cli.main`, in-process) and asserts the exit code,
the one-line message naming the file and the way out, the absence of a traceback and what is left
on disk: damaged files of a finished run read by search, predict, export, evaluate, baseline and
report; empty `predict` inputs; disk-full and read-only writes (a real read-only bind mount via
`unshare -m`, or injected EROFS); paths of the wrong type; and kills in the middle of an export's or
a report's writes, whose leftovers the next run removes (simulated in-process, and real SIGKILLs of
a forked child). Shared helpers: tests/faults_helpers.py.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from faults_helpers import TINY, _finished_copy, _truncate, one_line, run_cli, same_result
from faults_helpers import reference, search_args  # noqa: F401  (pytest fixtures)

from conftest import Killed  # and the simulated_kill fixture
from prunepeft import cli
from prunepeft.run import faults
from prunepeft.run import io as pio
from prunepeft.run import record as runs




# -- P11-P13: a report over an unreadable run, read-only output directories -----------------------
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
