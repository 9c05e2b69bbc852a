"""The signal report: Fisher-z means, arms from directory names, and the committed study rebuilt."""
from __future__ import annotations

import math
from pathlib import Path

import pytest

from prunepeft.report import collect_runs
from prunepeft.analysis.signal import arm_of, comparison_rows, signal_rows
from prunepeft.analysis.stats import fisher_mean, mde, mean_ci
from prunepeft.report.signal import build_signal

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"


def test_fisher_mean_and_mean_ci_by_hand():
    values = [0.1, 0.5, 0.3]
    zs = [math.atanh(v) for v in values]
    m = sum(zs) / 3
    sd = math.sqrt(sum((z - m) ** 2 for z in zs) / 2)
    half = 4.302652729911275 * sd / math.sqrt(3)  # t(0.975, 2)
    got = fisher_mean(values + [None])
    assert got == pytest.approx((math.tanh(m), math.tanh(m - half), math.tanh(m + half)))
    assert fisher_mean([0.2]) is None
    mean, hw, n = mean_ci([1.0, 2.0, 3.0])
    assert (mean, n) == (2.0, 3) and hw == pytest.approx(4.302652729911275 * 1.0 / math.sqrt(3))
    assert mde(1.0) == pytest.approx(2.8 / 1.96)
    assert arm_of("settings/keep_z-s101") == ("settings/keep_z", 101) and arm_of("plain") == ("plain", None)


@pytest.mark.skipif(not (RESULTS / "evidence" / "hybrid-s1").exists(), reason="committed study results absent")
def test_committed_study_is_rebuilt_by_the_report(tmp_path):
    """`prunepeft report runs=benchmarks/results` reproduces the numbers quoted in BENCHMARKS.md §8."""
    df = collect_runs(RESULTS)
    sig = signal_rows(df).set_index("arm")
    assert sig.loc["settings/keep", "corrected"] == pytest.approx(0.44, abs=0.005)
    assert sig.loc["settings/demo", "learned_nothing"] == 6 and sig.loc["settings/keep", "learned_nothing"] == 0
    comp = comparison_rows(df).set_index("arm")
    random = comp.loc["evidence/random", "delta_heldout"]
    assert random[0] == pytest.approx(-1.42, abs=0.005) and random[2] == 8
    lora = comp.loc["evidence/uniform_lora_eqparams", "delta_heldout"]
    assert lora[0] == pytest.approx(0.15, abs=0.005) and lora[1] == pytest.approx(0.36, abs=0.005)
    markdown = build_signal(df, tmp_path)
    assert "settings/keep" in markdown and (tmp_path / "figures" / "signal.png").stat().st_size > 0
    assert (tmp_path / "signal.csv").exists() and (tmp_path / "comparison.csv").exists()
