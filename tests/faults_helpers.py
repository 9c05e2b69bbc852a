"""Shared by the fault tests (tests/test_faults_*.py): the tiny search, the in-process CLI, its one-line message.

Plain functions only: each test file declares its own `search_args` and `reference` fixtures on
`search_command` and `finished_search` (module-scoped, so each file that uses `reference` runs its
own uninterrupted search); fixtures imported from a module read as unused imports to linters.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from prunepeft import cli
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


def search_command(glue_dir: Path) -> list[str]:
    """`prunepeft search` on the tiny model (the `search_args` fixture of the test files)."""
    return ["search", *TINY, f"data.dir={glue_dir}", *SEARCH]


def finished_search(search_args: list[str], run_dir: Path) -> Path:
    """One uninterrupted search into `run_dir` (the `reference` fixture of the test files)."""
    try:
        cli.main([*search_args, f"hydra.run.dir={run_dir}"])
    except SystemExit as stop:
        assert not stop.code
    assert (run_dir / "DONE").exists()
    return run_dir


def same_result(run_dir: Path, reference: Path) -> None:
    assert read_json(run_dir / "found_config.json") == read_json(reference / "found_config.json")
    assert read_json(run_dir / "summary.json")["metrics"] == read_json(reference / "summary.json")["metrics"]
    assert [r["removed"] for r in read_jsonl(run_dir / "rounds.jsonl")] == \
        [r["removed"] for r in read_jsonl(reference / "rounds.jsonl")]


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _finished_copy(reference: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(reference, tmp_path / "done", ignore=shutil.ignore_patterns(".lock")))


# Fixtures shared by the fault tests (imported by name there; pytest finds them in the test module).
@pytest.fixture(scope="module")
def search_args(glue_dir) -> list[str]:
    return search_command(glue_dir)


@pytest.fixture(scope="module")
def reference(search_args, tmp_path_factory) -> Path:
    """One uninterrupted search: every resumed run must end exactly like it, and the finished run whose
    files the tests damage, read or export."""
    return finished_search(search_args, tmp_path_factory.mktemp("faults") / "ref")
