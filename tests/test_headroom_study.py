"""benchmarks/lib/headroom.py: the envelope's draws are at hybrid's parameter count, seeded, prefix-stable, and
each is a found configuration `prunepeft baseline method=found` can build."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.lib import headroom

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"

pytestmark = pytest.mark.skipif(not (BENCH / "results" / "confirm_cpu" / "hybrid-s1" / "found_config.json").exists(),
                                reason="committed confirm_cpu runs absent")


def test_feasible_sets_by_hand():
    # lora 2, adapter 4 units of parameters; target 6 +- 1 (half the smallest unit) on 2 layers
    sets = headroom.feasible(6, 2, {"lora": 2, "adapter": 4})
    assert {frozenset(x) for x in sets} == {frozenset(x) for x in [
        ((0, "lora"), (0, "adapter")), ((0, "lora"), (1, "adapter")), ((1, "lora"), (0, "adapter")),
        ((1, "lora"), (1, "adapter"))]} and len(sets) == 4


def test_draws_are_at_hybrids_count_seeded_and_prefix_stable():
    import json

    hybrid = json.loads((headroom.SOURCE / "hybrid-s1" / "found_config.json").read_text())["params"]["peft"]
    first = headroom.draws(1, 8)
    assert first == headroom.draws(1, 8) and first == headroom.draws(1, 16)[:8]
    assert first != headroom.draws(2, 8)
    assert all(abs(d["params"] - hybrid) <= 24576 / 2 for d in first)
    assert len({tuple(d["units"]) for d in headroom.draws(1, 16)}) == 16  # distinct configurations


def test_a_draw_is_a_valid_found_configuration():
    from prunepeft.peft.found_config import FoundConfig

    units = ["0:adapter", "3:lora", "5:lora"]
    found = FoundConfig.from_json(headroom.found_config(1, units))
    assert sorted(f"{layer}:{t}" for layer, t in found.units) == sorted(units)
    assert found.peft_params == 49600 + 2 * 24576 and found.units[(3, "lora")].lora_r == 16
    assert found.units[(0, "adapter")].adapter_bottleneck == 64


def test_partners_pair_only_equal_parameter_seeds():
    # The committed hybrids: 123,776 (s1), 148,352 (s2), 147,904 (s3): s1 has no partner within 1 %.
    assert headroom.partners({1: 123776, 2: 148352, 3: 147904}) == [(2, 3), (3, 2)]
    assert headroom.partners({1: 100, 2: 101, 3: 102}) == [(1, 2), (2, 1), (2, 3), (3, 2)]  # 102 vs 100: 1.96 %
    assert headroom.partners({1: 100}) == []


def test_top_draw_is_best_on_dev_ties_to_lower_index_and_waits_for_all(tmp_path):
    import json

    def run(j, dev, heldout):
        d = tmp_path / f"env{j:02d}-s7"
        d.mkdir()
        (d / "summary.json").write_text(json.dumps({"primary": {"value": dev},
                                                    "metrics": {"train_heldout": {"accuracy": heldout}}}))

    run(0, 0.80, 0.90)  # best held-out, not best dev: dev decides
    run(1, 0.83, 0.70)
    assert headroom.top_draw(7, 3, tmp_path) is None  # env02 missing
    run(2, 0.83, 0.95)  # tied on dev with env01: the lower index wins
    assert headroom.top_draw(7, 3, tmp_path) == "env01"
    assert headroom.top_draw(7, 2, tmp_path) == "env01"


def _study(tops):
    env = {1: [80, 81, 82, 83], 2: [79, 80, 81, 84], 3: [81, 82, 83, 85]}  # medians 81.5, 80.5, 82.5
    markers = {"uniform_lora_eqparams": {1: 82.5, 2: 81.5, 3: 83.5},  # median +1 on every seed; best -0.5, -2.5, -1.5
               "hybrid": {1: 83.5, 2: 82.0, 3: 84.0},  # percentiles 100, 75, 75
               "masked_loss": {1: 81.0, 2: 80.0, 3: 82.0},  # 37.5 each (1 below, 1 tied of 4); LoRA -1.5 on every seed
               **tops}
    return {"envelope": {s: [(v, [], 1000) for v in vals] for s, vals in env.items()},
            "markers": {arm: {s: (v, 1000) for s, v in by_seed.items()} for arm, by_seed in markers.items()}}


def test_verdicts_by_hand():
    h1, hybrid, masked, h3 = headroom.verdicts(_study({"top_s2": {3: 83.9}, "top_s3": {2: 82.0}}))
    # LoRA - best: -0.5, -2.5, -1.5 -> -1.5, sd 1, half 4.3027 / sqrt(3) = 2.48
    assert h1 == ("H1 headroom above uniform LoRA: no headroom detected — LoRA − envelope median +1.00 ± 0.00 "
                  "(95 %, n=3), LoRA − envelope best -1.50 ± 2.48 (95 %, n=3); replicated tops: top_s2 at seed 3 − "
                  "LoRA +0.40; top_s3 at seed 2 − LoRA +0.50")
    # hybrid - median 2.0, 1.5, 1.5: 1.67 ± 4.3027 x 0.2887 / sqrt(3) = 0.72 (lower end 0.95 > 0)
    assert hybrid == ("H2 hybrid: finds the top quarter, better than a random configuration, as good as uniform LoRA — "
                      "percentile 100, 75, 75; − envelope median +1.67 ± 0.72 (95 %, n=3); − LoRA +0.67 ± 0.72 (95 %, n=3)")
    assert masked.startswith("H2 masked_loss: none of the three shown — percentile 38, 38, 38;")
    assert h3 == ("H3 the ground truth as the bound: masked_loss is not better than uniform LoRA: no headroom a criterion "
                  "can find at this scale (not detected at n=3: this design detects ≥ 0.0 points) — masked_loss − LoRA "
                  "-1.50 ± 0.00 (95 %, n=3)")
    # masked_loss - LoRA -1, -2, +1.5: sd 1.80, half 4.3027 x 1.80 / sqrt(3) = 4.48; detectable 4.48 x 2.8 / 1.96 = 6.4
    noisy = _study({})
    noisy["markers"]["masked_loss"] = {1: (81.5, 1000), 2: (79.5, 1000), 3: (85.0, 1000)}
    assert headroom.verdicts(noisy)[-1].endswith("(not detected at n=3: this design detects ≥ 6.4 points) — "
                                                 "masked_loss − LoRA -0.50 ± 4.48 (95 %, n=3)")


def test_verdicts_headroom_and_undecided():
    assert headroom.verdicts(_study({"top_s2": {3: 85.0}, "top_s3": {2: 82.6}}))[0].startswith(
        "H1 headroom above uniform LoRA: headroom above uniform LoRA —")  # both tops lead LoRA by > 1 point
    assert headroom.verdicts(_study({"top_s2": {3: 85.0}, "top_s3": {2: 82.0}}))[0].startswith(
        "H1 headroom above uniform LoRA: undecided —")  # one replicates, one does not
    assert "replicated tops: none yet" in headroom.verdicts(_study({}))[0]
    assert headroom.verdicts(_study({}))[0].startswith("H1 headroom above uniform LoRA: undecided")


def test_report_keeps_only_seeds_with_a_complete_envelope(tmp_path):
    from test_headroom_report import write_run

    here = tmp_path / "headroom"
    for seed, values in ((1, (0.80, 0.84)), (2, (0.70,))):  # seed 2 has 1 of its 2 draws
        for j, v in enumerate(values):
            write_run(here, f"env{j:02d}-s{seed}", v, 1000, ["0:lora"])
        write_run(here, f"hybrid-s{seed}", 0.83 if seed == 1 else 0.99, 1000, ["0:lora"], "search")
    out = headroom.report(2, here)
    assert out.startswith("Seeds with all 2 envelope draws: 1; not yet in the tables: seed 2 (1 of 2).\n\n")
    assert "| 1 | 2 |" in out and "| 2 | 1 |" not in out  # seed 2's row is held back
    assert "| hybrid | 1 | 50 (50–50) | 83.00 |" in out  # seed 2's hybrid (99.00) is not pooled in
    assert headroom.report(1, here).startswith("Seeds with all 1 envelope draws: 1, 2.\n\n")


def test_cost_table_by_hand(tmp_path):
    """Per search arm, the mean over the given seeds of search, probes (warm-up + round probes) and retrain
    seconds; stage B's older summary (no per-phase `cost`) gives search and retrain only; a seed outside the
    list is not pooled; an arm without runs is left out."""
    def summary(name: str, body: dict) -> None:
        (tmp_path / name).mkdir()
        (tmp_path / name / "summary.json").write_text(json.dumps(body))

    def phased(search: float, warm: float, rounds: float, retrain: float) -> dict:
        return {"cost": {"search_s": search, "retrain_s": retrain,
                         "phases_s": {"warmup_probes": warm, "round_probes": rounds}}}

    summary("masked_loss-s1", phased(300.0, 0.0, 90.0, 400.0))
    summary("masked_loss-s2", phased(100.0, 10.0, 20.0, 200.0))
    summary("masked_loss-s3", phased(9999.0, 9999.0, 9999.0, 1.0))  # not in the seeds asked for
    summary("hybrid-s1", {"search": {"wall_s": 150.0}, "train": {"wall_s": 50.0}})
    lines = headroom.cost_table([1, 2], tmp_path).splitlines()
    assert lines[2:] == ["| hybrid | 1 | 150 | — | 50 | 3.00 |",
                         "| masked_loss | 2 | 200 | 60 | 300 | 0.67 |"]  # mean of ratios would be 0.625
    assert headroom.cost_table([3], tmp_path).splitlines()[2:] == ["| masked_loss | 1 | 9999 | 19998 | 1 | 9999.00 |"]
    summary("hybrid_masked_loss-s1", {"search": {"rounds": 3}})  # no timing recorded: not a row
    assert "hybrid_masked_loss" not in headroom.cost_table([1, 2], tmp_path)
    assert headroom.cost_table([4], tmp_path) == ""  # no runs: no table at all
