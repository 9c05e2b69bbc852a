"""benchmarks/lib/cpu_stage_b.py's sequential rule (issue 15, Deliver 4 on CPU): which stage-B contrast
stops, at which block, and what runs next, on hand-built paired results with known answers."""
from __future__ import annotations


import pytest
from benchmarks.lib import cpu_stage_b



@pytest.fixture(scope="module")
def stage_b():
    return cpu_stage_b


def _runs(heldout: dict[str, dict[int, float]]) -> dict:
    return {arm: {x: {"summary": {"metrics": {"train_heldout": {"accuracy": acc}}}} for x, acc in seeds.items()}
            for arm, seeds in heldout.items()}


def test_each_contrast_stops_at_its_first_block_within_the_target_and_only_open_ones_run_on(stage_b):
    assert stage_b.primary_arms() == ["hybrid_agreement_zscore", "random", "single_weight", "uniform_lora_eqparams"]
    hybrid = {x: 0.84 for x in range(1, 17)}
    runs = _runs({
        "hybrid": hybrid,
        # ±0.001 alternating: sd 0.107 points over 8 seeds, half-width 0.09 -> stops after block 1
        "uniform_lora_eqparams": {x: 0.84 + (0.001 if x % 2 else -0.001) for x in range(1, 9)},
        # ±0.02 alternating: half-width 1.79 after 8 seeds and 1.10 after 16 (t quantiles 2.365, 2.131) -> open after two blocks
        "random": {x: 0.84 + (0.02 if x % 2 else -0.02) for x in range(1, 17)},
        # seeds 1-7 only: no whole block yet
        "single_weight": {x: 0.85 for x in range(1, 8)},
    })
    status = stage_b.sequential_status(runs)
    assert status["uniform_lora_eqparams"]["stopped_at"] == 8 and status["uniform_lora_eqparams"]["next_seeds"] == []
    assert status["uniform_lora_eqparams"]["half_widths"] == [pytest.approx(0.0894, abs=1e-3)]
    assert status["random"]["blocks"] == 2 and status["random"]["stopped_at"] is None
    assert status["random"]["half_widths"] == [pytest.approx(1.7875, abs=1e-3), pytest.approx(1.1007, abs=1e-3)]
    assert status["random"]["next_seeds"] == list(range(17, 25))
    assert status["single_weight"]["blocks"] == 0 and status["single_weight"]["next_seeds"] == list(range(1, 9))
    assert status["hybrid_agreement_zscore"]["next_seeds"] == list(range(1, 9))

    jobs, lora = stage_b.next_block_jobs(runs)
    open_lora = {**runs, "uniform_lora_eqparams": {}}  # an open LoRA contrast: its seeds follow hybrid's
    assert stage_b.next_block_jobs(open_lora)[1] == list(range(1, 9))
    planned = {(arm, seed) for _, arm, seed, _, _ in jobs}
    assert lora == []  # its contrast has stopped
    assert {("random", x) for x in range(17, 25)} <= planned and ("random", 9) not in planned
    assert {("hybrid", x) for x in [*range(1, 9), *range(17, 25)]} <= planned  # every open block with its pair
    assert ("single_weight", 3) in planned and ("single_weight", 17) not in planned
    assert all(cmd == "search" for _, _, _, cmd, _ in jobs)


def test_a_contrast_stops_at_24_seeds_whatever_its_width(stage_b):
    runs = _runs({"hybrid": {x: 0.84 for x in range(1, 25)},
                  "random": {x: 0.84 + (0.05 if x % 2 else -0.05) for x in range(1, 25)}})
    status = stage_b.sequential_status(runs)["random"]
    assert status["blocks"] == 3 and status["stopped_at"] == 24 and status["next_seeds"] == []
    assert status["half_widths"][-1] > stage_b.HALF_WIDTH_TARGET


def test_the_committed_stage_b_stops_after_one_block_and_the_search_beats_random(stage_b):
    """BENCHMARKS §11.2 from benchmarks/results/confirm_cpu/: every primary contrast met the sequential
    rule at 8 seeds, so nothing is left to run; random retrains below hybrid, in every seed."""
    status = stage_b.sequential_status()
    assert {a: st["stopped_at"] for a, st in status.items()} == {a: 8 for a in stage_b.primary_arms()}
    assert all(w <= stage_b.HALF_WIDTH_TARGET for st in status.values() for w in st["half_widths"])
    assert stage_b.next_block_jobs() == ([], [])
    runs = stage_b.s.load_runs(stage_b.STUDY)
    block = {a: {x: r for x, r in runs[a].items() if x <= 8} for a in ("random", "hybrid")}
    mean, half, n = stage_b.s.paired(block, "random", "hybrid", "train_heldout")
    assert n == 8 and mean + half < 0  # the numbers quoted in §11.2: -1.13 ± 0.69
    assert (round(mean, 2), round(half, 2)) == (-1.13, 0.69)
    heldout = {a: {x: stage_b.s.accuracy(r["summary"], "train_heldout") for x, r in block[a].items()} for a in block}
    assert all(heldout["random"][x] < heldout["hybrid"][x] for x in range(1, 9))
    assert any("| random | 8 | +1.18 ± 0.69 |" in line for line in stage_b.rule_pairings(runs))


def test_the_committed_consensus_runs_are_not_confirmed_as_a_free_replacement(stage_b):
    """BENCHMARKS §11.2: consensus + zscore against the adopted agreement + zscore, 8 paired seeds."""
    verdict = stage_b.decisions()["consensus"]
    assert (verdict["arm"], verdict["base"], verdict["n"]) == ("hybrid_consensus_zscore", "hybrid_agreement_zscore", 8)
    mean, half, _ = verdict["paired_heldout"]
    assert (round(mean, 2), round(half, 2)) == (-0.37, 0.73)
    assert verdict["verdict"] == "inconclusive" and not verdict["free_alternative_confirmed"]
