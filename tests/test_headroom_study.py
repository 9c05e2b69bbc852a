"""benchmarks/lib/headroom.py: the envelope's draws are at hybrid's parameter count, seeded, prefix-stable, and
each is a found configuration `prunepeft baseline method=found` can build."""
from __future__ import annotations

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
