"""The committed tables (reports/tables_<scale>/) are rebuilt byte for byte from the committed runs
(benchmarks/results/tables_<scale>/) by `prunepeft report` (issue 21: every number traceable to run files)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCALES = sorted(p.name.removeprefix("tables_") for p in (REPO / "benchmarks" / "results").glob("tables_*") if p.is_dir())


@pytest.mark.parametrize("scale", SCALES or [pytest.param(None, marks=pytest.mark.skip(reason="no committed table runs"))])
def test_committed_tables_rebuild_byte_for_byte(scale, tmp_path):
    committed = REPO / "reports" / f"tables_{scale}"
    names = sorted(p.name for p in committed.glob("table*.*") if p.suffix in (".md", ".csv", ".tex"))
    assert names, f"benchmarks/results/tables_{scale} has runs but reports/tables_{scale} has no tables"
    subprocess.run([sys.executable, "-m", "prunepeft.cli", "report", f"runs=benchmarks/results/tables_{scale}",
                    f"out={tmp_path}", "figures=false"], cwd=REPO, check=True, capture_output=True)
    for name in names:
        assert (tmp_path / name).read_bytes() == (committed / name).read_bytes(), name


@pytest.mark.parametrize("scale", SCALES or [pytest.param(None, marks=pytest.mark.skip(reason="no committed table runs"))])
def test_committed_claims_rebuild_byte_for_byte(scale):
    """reports/tables_<scale>/claims.txt: the pre-registered verdicts on the committed runs, as printed."""
    out = subprocess.run([sys.executable, "-m", "benchmarks.paper_claims", f"runs=benchmarks/results/tables_{scale}"],
                         cwd=REPO, check=True, capture_output=True, text=True).stdout
    assert out == (REPO / "reports" / f"tables_{scale}" / "claims.txt").read_text(encoding="utf-8")
    assert out.count("\n(") == 6  # (a), (a'), (b) twice, (c), (d)
