"""Commit the table runs' small files and rebuild the committed tables from them.

    python -m benchmarks.collect_tables --scale cpu      # outputs/cpu -> benchmarks/results/tables_cpu -> reports/tables_cpu
    python -m benchmarks.collect_tables --scale cpu --src /elsewhere/cpu   # a sweep run with RUNS=/elsewhere/cpu

`make tableN SCALE=cpu` writes whole run directories (weights, checkpoints) under outputs/<scale>/; only
the small files a table needs are committed, at the same relative paths, so `make tables` finds them
finished next time (copy them back into outputs/<scale>/ to resume a sweep elsewhere) and
`prunepeft report runs=benchmarks/results/tables_<scale>` rebuilds reports/tables_<scale>/ byte for byte
(tests/test_committed_tables.py), and `python -m benchmarks.paper_claims runs=...` its claims.txt (the verdicts
of benchmarks/rules/paper_claims.md on the same runs). Unfinished runs (no DONE) are not copied.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

from prunepeft.run import outputs

ROOT = Path(__file__).resolve().parents[1]
SMALL = (outputs.RUN_JSON, outputs.SUMMARY, outputs.FOUND_CONFIG, outputs.WARMUP, outputs.ROUNDS, outputs.DONE)


def collect(src: Path, dest: Path) -> list[Path]:
    """Copy the small files of every finished run under `src` to the same relative path under `dest`."""
    copied = []
    for done in sorted(src.rglob(outputs.DONE)):
        run = done.parent
        target = dest / run.relative_to(src)
        target.mkdir(parents=True, exist_ok=True)
        for name in SMALL:
            if (run / name).is_file():
                shutil.copy2(run / name, target / name)
        copied.append(target)
    return copied


def report(runs: Path, out: Path) -> None:
    """The committed tables (markdown, LaTeX, CSV; no figures: PNG bytes are not reproducible across fonts)."""
    subprocess.run([sys.executable, "-m", "prunepeft.cli", "report", f"runs={runs}", f"out={out}", "figures=false"],
                   check=True, cwd=ROOT)


CLAIMS = "claims.txt"  # the verdicts of benchmarks/rules/paper_claims.md on the same runs


def claims(runs: Path, out: Path) -> None:
    """`python -m benchmarks.paper_claims runs=<runs>`'s verdicts, committed beside the tables they judge."""
    text = subprocess.run([sys.executable, "-m", "benchmarks.paper_claims", f"runs={runs.relative_to(ROOT)}"],
                          check=True, cwd=ROOT, capture_output=True, text=True).stdout
    (out / CLAIMS).write_text(text, encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", default="cpu")
    parser.add_argument("--src", type=Path, default=None,
                        help="the sweep's RUNS folder (default outputs/<scale>): where `make tables RUNS=...` wrote")
    args = parser.parse_args()
    runs = ROOT / "benchmarks" / "results" / f"tables_{args.scale}"
    copied = collect(args.src or ROOT / "outputs" / args.scale, runs)
    print(f"{len(copied)} finished runs in {runs.relative_to(ROOT)}")
    report(runs, ROOT / "reports" / f"tables_{args.scale}")
    claims(runs, ROOT / "reports" / f"tables_{args.scale}")


if __name__ == "__main__":
    main()
