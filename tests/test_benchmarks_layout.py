"""The benchmarks stand on the package's public API, and the tests on the studies' shared code, never on
an entry point (issue 23, Deliver 5).

- `benchmarks/` is a package run as `python -m benchmarks.<name>`: no file edits `sys.path`;
- no benchmark imports a `_private` name or module of `prunepeft`, nor anything from `tests/`;
- no benchmark spells a run-file name: they come from `prunepeft.run.outputs`;
- no test imports an entry point `benchmarks/<name>.py` (the shared code is in `benchmarks/lib/`) or
  loads one by its path.

Each rule is checked on the source (AST, so comments and docstrings do not count) and each checker is
shown to see a violation on a small bad example.
"""
from __future__ import annotations

import ast
from pathlib import Path

from prunepeft.run import outputs

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks"
ENTRY_POINTS = {p.stem for p in BENCH.glob("*.py") if p.stem != "__init__"}
# Every name of the output contract that is a file or folder a run writes (not the globs or versions).
RUN_FILES = {v for k, v in vars(outputs).items() if k.isupper() and isinstance(v, str) and "*" not in v
             and v not in ("", ".") and ("." in v or k in ("DONE", "CHECKPOINT"))}


def sys_path_edits(tree: ast.AST) -> list[int]:
    """Lines that touch `sys.path` (insert, append, assignment, any use)."""
    return [n.lineno for n in ast.walk(tree) if isinstance(n, ast.Attribute) and n.attr == "path"
            and isinstance(n.value, ast.Name) and n.value.id == "sys"]


def private_or_test_imports(tree: ast.AST) -> list[str]:
    """`from prunepeft.x import _y`, `import prunepeft._x`, and any import of `tests`/`conftest`."""
    bad = []
    for n in ast.walk(tree):
        if isinstance(n, ast.Import):
            mods = [a.name for a in n.names]
            names: list[str] = []
        elif isinstance(n, ast.ImportFrom):
            mods, names = [n.module or ""], [a.name for a in n.names]
        else:
            continue
        for mod in mods:
            parts = mod.split(".")
            if parts[0] in ("tests", "conftest", "report_fixtures"):
                bad.append(f"{n.lineno}: {mod}")
            elif parts[0] == "prunepeft" and (any(p.startswith("_") for p in parts)
                                              or any(x.startswith("_") for x in names)):
                bad.append(f"{n.lineno}: {mod} {names}")
    return bad


def run_file_literals(tree: ast.AST) -> list[str]:
    """String constants (f-string parts included) that are, or end in `/`, a run-file name."""
    return [f"{n.lineno}: {n.value!r}" for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)
            and any(n.value == f or n.value.endswith("/" + f) for f in RUN_FILES)]


def entry_point_imports(tree: ast.AST, entry_points: set[str]) -> list[str]:
    """Imports of `benchmarks.<entry point>` (or the bare script name, as through a `sys.path` edit), and
    loading a file by its path (`spec_from_file_location`, `runpy.run_path`)."""
    bad = []
    for n in ast.walk(tree):
        if isinstance(n, ast.Import):
            targets = [a.name for a in n.names]
        elif isinstance(n, ast.ImportFrom):
            base = n.module or ""
            targets = [f"{base}.{a.name}" for a in n.names] if base == "benchmarks" else [base]
        elif isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr in (
                "spec_from_file_location", "run_path"):
            bad.append(f"{n.lineno}: {n.func.attr}")
            continue
        else:
            continue
        for t in targets:
            parts = t.split(".")
            if (parts[0] == "benchmarks" and len(parts) > 1 and parts[1] in entry_points) or \
                    (len(parts) == 1 and parts[0] in entry_points):
                bad.append(f"{n.lineno}: {t}")
    return bad


def _trees(paths) -> dict[str, ast.AST]:
    return {p.relative_to(ROOT).as_posix(): ast.parse(p.read_text()) for p in sorted(paths)}


def test_the_benchmarks_use_the_public_api_only():
    trees = _trees(BENCH.rglob("*.py"))
    assert "benchmarks/lib/study_runner.py" in trees and "benchmarks/__init__.py" in trees
    found = {f: (sys_path_edits(t), private_or_test_imports(t), run_file_literals(t)) for f, t in trees.items()}
    assert {f: v for f, v in found.items() if any(v)} == {}


def test_no_test_imports_a_benchmark_entry_point():
    assert {"cpu_stage_b", "signal_study", "plan", "gpu_check", "faults"} <= ENTRY_POINTS
    trees = _trees((ROOT / "tests").glob("*.py"))
    found = {f: entry_point_imports(t, ENTRY_POINTS) for f, t in trees.items()}
    assert {f: v for f, v in found.items() if v} == {}


def test_the_checkers_see_each_violation():
    bad = ast.parse("import sys\nsys.path.insert(0, 'x')\nfrom prunepeft.peft.supernet import _build\n"
                    "import prunepeft._secret\nfrom tests.conftest import cli_ok\nfrom conftest import Killed\n"
                    f"p = root / '{outputs.SUMMARY}'\nq = f'{{arm}}-s*/{outputs.FOUND_CONFIG}'\n")
    assert sys_path_edits(bad) == [2]
    assert [x.split(":")[0] for x in private_or_test_imports(bad)] == ["3", "4", "5", "6"]
    assert [x.split(":")[0] for x in run_file_literals(bad)] == ["7", "8"]
    good = ast.parse("from prunepeft.run import outputs\np = root / outputs.SUMMARY\nname = 'summary'\n")
    assert sys_path_edits(good) == private_or_test_imports(good) == run_file_literals(good) == []
    tests = ast.parse("from benchmarks import cpu_stage_b\nimport benchmarks.plan\nimport signal_study\n"
                      "from benchmarks.lib import cpu_stage_b as ok\nfrom benchmarks.lib.plan import plan\n"
                      "import importlib.util\nimportlib.util.spec_from_file_location('x', 'benchmarks/x.py')\n")
    assert [x.split(":")[0] for x in entry_point_imports(tests, {"cpu_stage_b", "plan", "signal_study"})] == \
        ["1", "2", "3", "7"]
