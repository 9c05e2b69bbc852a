"""The search's cost by phase (prunepeft.pruning.cost) and the warm-up's learned flag, end to end on tiny_bert."""
from __future__ import annotations

import math
from types import SimpleNamespace

import pytest

from prunepeft.commands import search as search_cmd
from prunepeft.run.io import read_json
from prunepeft.pruning import cost
from prunepeft.pruning.warmup import chance_loss, learning_record

SEARCH = ["search.warmup.subset=32", "search.warmup.epochs=1", "search.warmup.snapshots=2",
          "search.retrain_epochs=1", "budget.params=2000", "search.k=2"]
# The diagnostics probe and the agreement probe on 32 unused rows each, and the masked_loss criterion (a hybrid
# candidate here, so that its warm-up and round probes run) on 16 (the run trains on 64 of RTE's 2,490).
PROBES = ["data.train_subset=64", "search.diagnostics.enabled=true", "search.diagnostics.probe=32",
          "search.diagnostics.random_sets=3", "search.warmup.assign=agreement", "search.warmup.agreement_probe=32",
          "search.criteria=[weight,zeros,threshold,activation,taylor,gradient,masked_loss]", "search.masked_loss.probe=16"]


@pytest.fixture(scope="module")
def probed_run(glue_dir, tmp_path_factory):
    from conftest import compose_config, tiny_overrides_for

    run_dir = tmp_path_factory.mktemp("probed")
    summary = search_cmd.run(compose_config("search", tiny_overrides_for(glue_dir) + SEARCH + PROBES), run_dir)
    return run_dir, summary


def test_phases_add_up_to_the_runs_wall_clock(probed_run):
    run_dir, summary = probed_run
    c = summary["cost"]
    phases = c["phases_s"]
    assert set(phases) == set(cost.PHASES)
    # every phase that ran is charged; the probes ran, so their phases are not zero
    assert all(phases[p] > 0 for p in cost.PHASES)
    wall = read_json(run_dir / "run.json")["wall_s"]
    assert abs(sum(phases.values()) - wall) <= 0.05 * wall, (phases, wall)
    assert c["search_s"] == pytest.approx(sum(phases[p] for p in cost.SEARCH_PHASES), abs=2e-3)
    assert c["search_over_retrain"] == pytest.approx(c["search_s"] / c["retrain_s"], rel=1e-3)


def test_examples_trained_and_forward_only_are_counted(probed_run):
    run_dir, summary = probed_run
    ex = summary["cost"]["examples"]
    warm = read_json(run_dir / "warmup.json")
    rounds = summary["search"]["rounds"]
    # trained: warm-up on d (32) + every round one epoch over D (64); retrain one epoch over D
    assert ex["search_trained"] == 32 + 64 * rounds == summary["search"]["examples"]
    assert ex["retrain_trained"] == 64
    # forward-only: the dev slice (32) after each round, the agreement probe (32 rows x (1 base + units)
    # at each of 2 snapshots), and the diagnostics probe (more than one pass per round)
    agreement = sum(32 * (1 + len(imp)) for imp in warm["agreement"]["importance"])
    assert ex["search_forward_only"] > 32 * rounds + agreement + 32 * rounds
    assert ex["retrain_forward_only"] == 32


def test_warmup_records_its_loss_per_snapshot_and_the_learned_flag(probed_run):
    run_dir, _ = probed_run
    learning = read_json(run_dir / "warmup.json")["learning"]
    assert len(learning["train_loss"]) == 2 and all(math.isfinite(x) for x in learning["train_loss"])
    # RTE's 64-row slice is near-balanced: chance = the label entropy, at most ln 2
    assert 0.6 < learning["chance_loss"] <= math.log(2) + 1e-9
    assert learning["learned"] == (learning["train_loss"][-1] < learning["chance_loss"] - learning["margin"])


def test_chance_loss_is_the_label_entropy_or_the_variance():
    assert chance_loss([0, 1, 0, 1], False) == pytest.approx(math.log(2))
    # 70/30 (CoLA-like): below ln 2, so a model that only learned the prior is not "learning"
    assert chance_loss([1] * 7 + [0] * 3, False) == pytest.approx(-(0.7 * math.log(0.7) + 0.3 * math.log(0.3)))
    assert chance_loss([0, 1, 2, 3, 4, 5, 6, 7, 8], False) == pytest.approx(math.log(9))
    assert chance_loss([1.0, 2.0, 4.0], True) == pytest.approx(14 / 9)  # population variance


def test_learning_record_reads_the_last_snapshot_against_chance_minus_margin():
    ln2 = math.log(2)
    # the loss fell, but the last snapshot is still within the margin of chance: learned nothing
    assert not learning_record([0.80, ln2 - 0.01], ln2, 0.02, False)["learned"]
    assert learning_record([0.80, ln2 - 0.03], ln2, 0.02, False)["learned"]
    # an early low snapshot does not count, only the last one
    assert not learning_record([0.40, 0.70], ln2, 0.02, False)["learned"]
    # regression: the margin is a fraction of the variance (2.0 -> 0.04)
    rec = learning_record([1.97], 2.0, 0.02, True)
    assert rec["margin"] == pytest.approx(0.04) and not rec["learned"]
    assert learning_record([1.95], 2.0, 0.02, True)["learned"]


def test_cost_add_accumulates_and_refuses_an_unknown_phase():
    state = SimpleNamespace(phases={}, forward_examples=0)
    cost.add(state, "rounds", 1.25, 10)
    cost.add(state, "rounds", 0.75, 5)
    cost.add(state, "retrain", 3.0, 99)  # the retrain's forward rows live in its FitResult, not the search's
    assert state.phases == {"rounds": 2.0, "retrain": 3.0} and state.forward_examples == 15
    with pytest.raises(ValueError, match="warmup"):
        cost.add(state, "warmup", 1.0)
    assert cost.ratio(2.0, 3.0) == pytest.approx(0.6667) and cost.ratio(2.0, 0.0) is None


def test_a_resumed_search_keeps_the_earlier_invocations_cost(compose_cfg, tiny_overrides, tmp_path):
    from prunepeft.pruning.search import SimulatedCrash

    overrides = tiny_overrides + SEARCH
    with pytest.raises(SimulatedCrash):
        search_cmd.run(compose_cfg("search", overrides + ["debug.crash_after_round=1"]), tmp_path)
    first = read_json(tmp_path / "checkpoint" / "state.json")["phases"]
    assert first["warmup_train"] > 0 and first["rounds"] > 0 and "retrain" not in first
    summary = search_cmd.run(compose_cfg("search", overrides), tmp_path)
    phases = summary["cost"]["phases_s"]
    assert phases["warmup_train"] == pytest.approx(first["warmup_train"])  # not re-run, still counted
    assert phases["rounds"] > first["rounds"] and phases["setup"] > first["setup"]
