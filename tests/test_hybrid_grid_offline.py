"""benchmarks/lib/hybrid_grid_offline.py (BENCHMARKS §11): the paired run-level contrasts of issue 15's
Deliver 1 on hand-built per-run cells, and the committed grid's provenance."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from benchmarks.lib import hybrid_grid_offline

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def offline():
    return hybrid_grid_offline


def test_contrasts_pair_cells_within_each_run(offline):
    # argmax is 0.1 below permuted in every run although the runs' levels differ widely: paired, the
    # difference is exact (zero width); unpaired it would drown in the spread between runs.
    per_run = [{"argmax|paper": level, "permuted|paper": level + 0.1, "random|paper": level, "random|rank": level}
               for level in (-0.5, 0.0, 0.4, 0.9)]
    out = offline.run_contrasts(per_run)
    mean, half, n = out["selection bias: argmax − permuted (paper)"]["t"]
    assert (mean, n) == (pytest.approx(-0.1), 4) and half == pytest.approx(0.0, abs=1e-12)
    assert out["scale mixing: paper − rank (random per key)"]["t"][0] == 0.0
    assert out["selection bias: argmax − permuted (rank)"]["t"] is None  # no run has those cells


def test_the_committed_grid_uses_the_issues_100_draws_and_reports_the_contrasts(offline):
    grid = json.loads((ROOT / "benchmarks" / "results" / "hybrid_grid_offline.json").read_text())
    assert grid["draws"] == offline.OFFLINE_DRAWS == 100 and grid["rounds"] == 49 and grid["runs"] == 21
    assert set(grid["contrasts"]) == set(offline.CONTRASTS)
    for c in grid["contrasts"].values():
        mean, low, high, n = c["bootstrap"]
        assert n == 21 and low <= mean <= high
