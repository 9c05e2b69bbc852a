"""The README's newest numbers, recomputed from the committed runs they quote.

Each paragraph names the runs it was written from (e.g. "9 of the 16" envelope draws of seed 1), so the
test recomputes exactly those: runs committed later do not break it, and a number edited by hand does.
"""
from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest

from prunepeft.run import outputs

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
README = (ROOT / "README.md").read_text()


def _heldout(run: Path) -> float:
    return 100 * json.loads((run / outputs.SUMMARY).read_text())["metrics"]["train_heldout"]["accuracy"]


def _dev(run: Path) -> float:
    return json.loads((run / outputs.SUMMARY).read_text())["primary"]["value"]


def test_headroom_paragraph():
    here = RESULTS / "headroom"
    draws = [_heldout(here / f"env{j:02d}-s1") for j in range(11)]  # "11 of the 16 ... seed 1"
    hybrid, lora = _heldout(here / "hybrid-s1"), _heldout(here / "uniform_lora_eqparams-s1")
    text = (f"held-out accuracy {min(draws):.2f}–{max(draws):.2f} %, median {statistics.median(draws):.2f} %. "
            f"Hybrid's own configuration ({hybrid:.2f} %) is above {sum(d < hybrid for d in draws)} of the 11 and "
            f"{max(draws) - hybrid:.2f} points below the best")
    assert " ".join(text.split()) in " ".join(README.split())
    assert f"uniform LoRA at equal parameters ({lora:.2f} %)" in " ".join(README.split())


def test_equal_compute_paragraph():
    here = RESULTS / "equal_compute"
    warm, lora = here / "hybrid_warm-s1", here / "lora_equal_compute-s1"
    text = (f"the warm start reached {_heldout(warm):.2f} % held-out and equal-compute LoRA {_heldout(lora):.2f} %")
    assert text in " ".join(README.split())
    cost = json.loads((warm / outputs.SUMMARY).read_text())["cost"]["examples"]
    trained = json.loads((lora / outputs.SUMMARY).read_text())["train"]["examples_seen"]
    assert (trained, cost["search_trained"] + cost["retrain_trained"]) == (6000, 6560)  # "about 6,000–6,600"
    from prunepeft.analysis.stats import mean_ci

    diffs = [_heldout(here / f"hybrid_warm-s{s}") - _heldout(here / f"lora_equal_compute-s{s}") for s in (1, 2)]
    mean, half, n = mean_ci(diffs)  # "over seeds 1–2"
    signed = f"{mean:+.2f}".replace("-", "−")
    assert f"warm − equal-compute LoRA is {signed} ± {half:.2f} points (paired, 95 %, n = {n})" in " ".join(README.split())


@pytest.mark.parametrize("task, low, high", [("sst2", "77.8", "80.8"), ("rte", "53.8", "56.7")])
def test_cpu_table_baselines_paragraph(task, low, high):
    runs = sorted((RESULTS / "tables_cpu" / task / "minilm_l6" / "baseline").glob("*-from_none/*-s1"))
    values = [100 * _dev(r) for r in runs]
    assert len(values) == 4  # FFT, adapter, LoRA, DoRA
    assert (f"{min(values):.1f}", f"{max(values):.1f}") == (low, high)
    assert f"{low}–{high} %" in README


def test_cpu_table_stsb_learns_only_with_full_fine_tuning():
    base = RESULTS / "tables_cpu" / "stsb" / "minilm_l6" / "baseline"
    fft = 100 * _dev(next((base / "fft-from_none").glob("*-s1")))
    peft = [100 * _dev(next((base / f"{m}-from_none").glob("*-s1"))) for m in ("adapter", "lora", "dora")]
    assert f"Pearson {fft:.1f} against {min(peft):.1f} to {max(peft):.1f}".replace("-", "−") in " ".join(README.split())


def test_cpu_table_cola_is_majority_class():
    runs = sorted((RESULTS / "tables_cpu" / "cola" / "minilm_l6" / "baseline").glob("*-from_none/*-s1"))
    assert len(runs) == 4 and all(_dev(r) == 0.0 for r in runs)
    assert "CoLA (Matthews correlation 0.0 for all four" in " ".join(README.split())
