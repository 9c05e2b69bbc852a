"""Print helpers for BENCHMARKS.md's tables: each table rebuilt from the committed run files under
`benchmarks/results/`, in the layout BENCHMARKS prints (labels, column names, digits).

Every `±` says what it is: `mean ± sd` over seeds, or a paired difference `mean ± 95 %` (t
half-width). `tests/test_benchmarks_tables.py` checks that each table in BENCHMARKS.md appears byte
for byte in the output of the `<!-- rebuild: ... -->` command above it.
"""
from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Optional, Sequence

from benchmarks.lib.study_runner import RESULTS, accuracy, paired
from prunepeft.analysis.stats import bootstrap_ci, mde, mean_sd
from prunepeft.run import outputs  # the run-file names

MINUS = "\u2212"


def signed(x: float, digits: int = 2) -> str:
    """+1.23 / −1.23 with a typographic minus (BENCHMARKS' style)."""
    return f"{x:+.{digits}f}".replace("-", MINUS)


def sd_cell(values: list[float], digits: int = 1) -> str:
    m = mean_sd(values)
    return "—" if m is None else f"{m[0]:.{digits}f} ± {m[1]:.{digits}f}"


def _sub(runs: dict, arm: str, seeds: Optional[Sequence[int]]) -> dict:
    return {x: r for x, r in runs.get(arm, {}).items() if seeds is None or x in seeds}


def _common(runs: dict, arm: str, base: str, seeds: Optional[Sequence[int]]) -> list[int]:
    return sorted(set(_sub(runs, arm, seeds)) & set(_sub(runs, base, seeds)))


def params(runs: dict, arm: str, seeds: Sequence[int]) -> list[int]:
    return [runs[arm][x]["summary"]["params"]["peft"] for x in seeds]


def ratio_cell(runs: dict, arm: str, base: str, seeds: Sequence[int]) -> str:
    """min–max over seeds of arm's PEFT parameters / base's, paired by seed."""
    if arm == base:
        return "1"
    r = [a / b for a, b in zip(params(runs, arm, seeds), params(runs, base, seeds))]
    return f"{min(r):.2f}–{max(r):.2f}"


def minutes_cell(study: str, arm: str, seeds: Sequence[int]) -> str:
    """min–max over seeds of run.json's wall time, in minutes."""
    walls = [json.loads((RESULTS / study / f"{arm}-s{x}" / outputs.RUN_JSON).read_text())["wall_s"] / 60 for x in seeds]
    return f"{min(walls):.1f}–{max(walls):.1f}"


def paired_cells(runs: dict, arm: str, base: str, seeds: Sequence[int]) -> dict[str, str]:
    """Δ held-out and Δ dev (paired, mean ± 95 %), the seed bootstrap and the MDE of arm − base."""
    sub = {a: {x: runs[a][x] for x in seeds} for a in (arm, base)}
    dh, dd = (paired(sub, arm, base, split) for split in ("train_heldout", "validation"))
    diffs = [100 * (accuracy(sub[arm][x]["summary"], "train_heldout") - accuracy(sub[base][x]["summary"], "train_heldout"))
             for x in seeds]
    b = bootstrap_ci(diffs)
    return {"dh": f"{signed(dh[0])} ± {dh[1]:.2f}", "dd": f"{signed(dd[0])} ± {dd[1]:.2f}",
            "boot": f"[{signed(b[1])}, {signed(b[2])}]", "mde": f"{mde(dh[1]):.2f}"}


COLUMNS = {
    "n": "n",
    "params": "PEFT params",
    "params_gap": "PEFT params (gap to B)",
    "ratio": "params / hybrid's (per seed)",
    "minutes": "min per run (run.json)",
    "dev": "dev (mean ± sd)",
    "held": "held-out 5k (mean ± sd)",
    "dh": "Δ held-out vs hybrid (paired, mean ± 95 %)",
    "boot": "seed bootstrap 95 %",
    "dd": "Δ dev vs hybrid (paired, mean ± 95 %)",
    "mde": "MDE held-out (80 % power)",
    "pct": "PEFT % of base",
}


def arm_table(study: str, rows: Sequence[tuple[str, str]], columns: Sequence[str], base: str = "hybrid",
              seeds: Optional[Sequence[int]] = None, header: Optional[dict[str, str]] = None,
              budget: Optional[int] = None) -> list[str]:
    """One row per (arm, label): the arm's seeds paired with `base` (all common seeds, or `seeds`)."""
    from benchmarks.lib.study_runner import load_runs

    runs = load_runs(study)
    names = {**COLUMNS, **(header or {})}
    lines = ["| arm | " + " | ".join(names[c] for c in columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for arm, label in rows:
        xs = sorted(_sub(runs, arm, seeds)) if arm == base else _common(runs, arm, base, seeds)
        if len(xs) < 2:
            continue
        cells: dict[str, str] = {"n": str(len(xs))}
        p = params(runs, arm, xs)
        cells["params"] = f"{min(p) / 1e3:.0f}k–{max(p) / 1e3:.0f}k"
        if budget:
            cells["params_gap"] = (f"{min(p):,}–{max(p):,} ({_k(budget - max(p))}–{_k(budget - min(p))})")
        cells["ratio"] = ratio_cell(runs, arm, base, xs)
        cells["minutes"] = minutes_cell(study, arm, xs)
        cells["dev"] = sd_cell([100 * accuracy(runs[arm][x]["summary"], "validation") for x in xs])
        cells["held"] = sd_cell([100 * accuracy(runs[arm][x]["summary"], "train_heldout") for x in xs])
        cells["pct"] = f"{statistics.mean(runs[arm][x]['summary']['params']['percent'] for x in xs):.3f}"
        if arm == base:
            cells |= {"dh": "—", "dd": "—", "boot": "—", "mde": "—"}
        else:
            cells |= paired_cells(runs, arm, base, xs)
        lines.append(f"| {label} | " + " | ".join(cells[c] for c in columns) + " |")
    return lines


def _k(gap: int) -> str:
    """A gap to B: exact below 1,000, else in thousands."""
    return f"{gap:,}" if gap < 1000 else f"{gap / 1e3:.0f}k"


def against_table(study: str, arm: str, title: str, others: Sequence[tuple[str, str]],
                  columns: Sequence[str] = ("n", "dh", "boot")) -> list[str]:
    """`arm` paired with each other arm (Δ = arm − other, all common seeds)."""
    from benchmarks.lib.study_runner import load_runs

    runs = load_runs(study)
    names = {"n": "n", "dh": "Δ held-out (paired, mean ± 95 %)", "boot": "seed bootstrap 95 %",
             "dd": "Δ dev (paired, mean ± 95 %)", "ratio": "that arm's params / this arm's (per seed)"}
    lines = [f"| {title} | " + " | ".join(names[c] for c in columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for other, label in others:
        xs = _common(runs, arm, other, None)
        if len(xs) < 2:
            continue
        cells = {"n": str(len(xs)), **paired_cells(runs, arm, other, xs)}
        r = [b / a for a, b in zip(params(runs, arm, xs), params(runs, other, xs))]
        cells["ratio"] = f"{min(r):.2f}–{max(r):.2f}"
        lines.append(f"| {label} | " + " | ".join(cells[c] for c in columns) + " |")
    return lines
