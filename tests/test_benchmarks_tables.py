"""Every table in BENCHMARKS.md says where it comes from, and the rebuildable ones are rebuilt.

A markdown table must sit right under one HTML comment:
- `<!-- rebuild: python -m benchmarks.<script> --report [...] -->`: the command reads only the committed
  files under `benchmarks/results/` and prints the table byte for byte (run here in-process as `python -m`
  would run it, no training);
- `<!-- historical: <why there are no committed runs> -->`: and its section says so in visible text
  ("no committed run files");
- `<!-- measured: <command> -->`: timings of a command, which cannot be rebuilt from files.
"""
from __future__ import annotations

import contextlib
import io
import os
import re
import runpy
import shlex
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "BENCHMARKS.md"
RESULTS = ROOT / "benchmarks" / "results"
MARKER = re.compile(r"^\s*<!--\s*(rebuild|historical|measured):\s*(.+?)\s*-->\s*$")


def tables(text: str) -> list[dict]:
    """Each markdown table (outside code fences): its first line number, its lines (dedented), its
    marker (kind, argument) from the nearest non-blank line above, and the section it sits in."""
    lines = text.splitlines()
    out, fence, heading, i = [], False, "", 0
    while i < len(lines):
        line = lines[i]
        if line.lstrip().startswith("```"):
            fence = not fence
        if not fence and line.startswith("#"):
            heading = i
        is_row = not fence and line.lstrip().startswith("|")
        if is_row and i + 1 < len(lines) and re.match(r"^\s*\|\s*:?-+:?\s*\|", lines[i + 1]):
            j = i
            while j < len(lines) and lines[j].lstrip().startswith("|"):
                j += 1
            indent = len(line) - len(line.lstrip())
            k = i - 1
            while k >= 0 and not lines[k].strip():
                k -= 1
            m = MARKER.match(lines[k]) if k >= 0 else None
            end = next((n for n in range(i, len(lines)) if lines[n].startswith("#")), len(lines))
            out.append({"line": i + 1, "rows": [r[indent:] for r in lines[i:j]],
                        "marker": (m.group(1), m.group(2)) if m else None,
                        "section": "\n".join(lines[heading:end])})
            i = j
            continue
        i += 1
    return out


def test_the_parser_finds_tables_and_markers():
    doc = "# A\n\n<!-- rebuild: python -m benchmarks.x --report -->\n| a | b |\n|---|---|\n| 1 | 2 |\n\n" \
          "```\n| not | a table |\n|---|---|\n```\n| no | marker |\n|---|---|\n"
    found = tables(doc)
    assert [(t["line"], t["marker"]) for t in found] == [(4, ("rebuild", "python -m benchmarks.x --report")),
                                                        (12, None)]
    assert found[0]["rows"] == ["| a | b |", "|---|---|", "| 1 | 2 |"]


def test_every_table_has_a_provenance_marker():
    found = tables(DOC.read_text())
    assert len(found) >= 20
    missing = [t["line"] for t in found if t["marker"] is None]
    assert not missing, f"BENCHMARKS.md tables without a rebuild/historical/measured marker at lines {missing}"
    for t in found:
        kind, arg = t["marker"]
        if kind == "historical":
            assert "no committed run files" in t["section"].lower(), \
                f"line {t['line']}: a historical table's section must say so in visible text"
        if kind == "rebuild":
            assert arg.startswith("python -m benchmarks.") and "--report" in arg, f"line {t['line']}: {arg}"


_OUTPUTS: dict[str, str] = {}


def _run(command: str) -> str:
    """stdout of `python -m benchmarks.<script> ...`, run in this process as `python -m` runs it (the
    entry point executes as `__main__`; nothing of it is imported here; the reports read files only)."""
    if command not in _OUTPUTS:
        flag, module, *args = shlex.split(command)[1:]
        assert flag == "-m", command
        buf, env, path, old_argv = io.StringIO(), dict(os.environ), list(sys.path), sys.argv
        sys.argv = [module, *args]
        try:
            with contextlib.redirect_stdout(buf), contextlib.suppress(SystemExit):
                runpy.run_module(module, run_name="__main__", alter_sys=True)
        finally:
            sys.argv = old_argv
            sys.path[:] = path
            os.environ.clear()
            os.environ.update(env)
        _OUTPUTS[command] = buf.getvalue()
    return _OUTPUTS[command]


@pytest.mark.skipif(not RESULTS.is_dir(), reason="benchmarks/results is not in this checkout")
def test_rebuilt_tables_match_their_command_byte_for_byte():
    found = [t for t in tables(DOC.read_text()) if t["marker"] and t["marker"][0] == "rebuild"]
    assert found
    stale = []
    for t in found:
        table = "\n".join(t["rows"])
        out = _run(t["marker"][1])
        if f"\n{table}\n" not in f"\n{out}\n":
            stale.append(f"line {t['line']}: `{t['marker'][1]}` does not print this table")
    assert not stale, "\n".join(stale)


LABEL = re.compile(r"\bsd\b|\bstd\b|95 ?%")


def unlabelled_plus_minus(text: str) -> list[int]:
    """Lines starting a paragraph, bullet or table that prints a ± without saying sd or 95 % in it (tables:
    in the header row, or in the row itself)."""
    lines = text.splitlines()
    out, fence, header = [], False, ""

    def close(b):
        if b and any("±" in x for x in b[1]) and not LABEL.search("\n".join(b[1])):
            out.append(b[0])

    cur: list = []
    for n, line in enumerate(lines, 1):
        if line.lstrip().startswith("```"):
            fence = not fence
            continue
        if fence:
            continue
        s = line.lstrip()
        if s.startswith("|"):
            close(cur)
            cur = []
            if not (lines[n - 2].lstrip().startswith("|")):  # a header row: the table's label lives here
                header = line
            if "±" in line and not LABEL.search(header) and not LABEL.search(line):
                out.append(n)
            continue
        if not s or re.match(r"^([-*]|\d+\.) |^#|^<!--", s):
            close(cur)
            cur = [n, [line]] if s else []
            continue
        if cur:
            cur[1].append(line)
        else:
            cur = [n, [line]]
    close(cur)
    return sorted(set(out))


@pytest.mark.parametrize("doc", ["BENCHMARKS.md", "README.md"])
def test_every_plus_minus_says_sd_or_95_percent(doc):
    bad = unlabelled_plus_minus((ROOT / doc).read_text())
    assert not bad, f"{doc}: a ± with no 'sd' or '95 %' in its paragraph or table header at lines {bad}"
