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
