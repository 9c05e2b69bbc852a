"""Warm-up maths: tendencies τ, the assignment S_H, pick counts, warmup.json round trip."""
from __future__ import annotations

import json

import pytest

from prunepeft.errors import UserError
from prunepeft.pruning.partitions import Partition
from prunepeft.pruning.scoring import scores_from_oriented
from prunepeft.pruning.warmup import (
    assign,
    constant_assignment,
    load_assignment,
    pick_counts,
    summarise_warmup,
    tendencies,
    unit_assignment,
)

PART = Partition(4)  # one layer per block
UNITS = [(layer, t) for layer in range(4) for t in ("lora", "adapter")]


def snap(**oriented_by_criterion):
    return {c: scores_from_oriented(c, o) for c, o in oriented_by_criterion.items()}


def favour(layer_order):
    """Oriented scores that make units more prunable the later their layer appears in `layer_order`."""
    return {u: float(layer_order.index(u[0])) + (0.5 if u[1] == "lora" else 0.0) for u in UNITS}


@pytest.fixture
def snapshots():
    # weight finds the deep layers prunable; taylor the shallow ones; threshold always ties.
    flat = {u: 0.3 for u in UNITS}
    return [
        snap(weight=favour([0, 1, 2, 3]), taylor=favour([3, 2, 1, 0]), threshold=flat),
        snap(weight=favour([0, 1, 2, 3]), taylor=favour([3, 2, 1, 0]), threshold=flat),
    ]


def test_tendencies_by_hand(snapshots):
    tau = tendencies(snapshots, PART)
    assert list(tau) == ["weight", "threshold", "taylor"]  # registry order
    # weight ranks (n = 8): layer-3 lora is the most prunable (8/8), layer-3 adapter 7/8
    assert tau["weight"][(3, "lora")] == pytest.approx(1.0)
    assert tau["weight"][(3, "adapter")] == pytest.approx(7 / 8)
    assert tau["weight"][(0, "adapter")] == pytest.approx(1 / 8)
    assert tau["taylor"][(0, "lora")] == pytest.approx(1.0)
    assert tau["threshold"][(2, "lora")] == pytest.approx(9 / 16)  # all tied: (n+1)/2n


def test_tendency_is_the_mean_over_snapshots_and_key_units():
    part = Partition(6)  # block 1 = layers 1-2
    units = [(1, "lora"), (2, "lora"), (0, "lora"), (5, "lora")]
    s1 = snap(weight={units[0]: 4.0, units[1]: 3.0, units[2]: 2.0, units[3]: 1.0})  # ρ = 1, .75, .5, .25
    s2 = snap(weight={units[0]: 1.0, units[1]: 2.0, units[2]: 3.0, units[3]: 4.0})  # ρ = .25, .5, .75, 1
    tau = tendencies([s1, s2], part)
    assert tau["weight"][(1, "lora")] == pytest.approx((1 + 0.75 + 0.25 + 0.5) / 4)
    assert tau["weight"][(0, "lora")] == pytest.approx((0.5 + 0.75) / 2)


def test_assignment_argmax_ties_degenerate_and_random(snapshots):
    result = summarise_warmup(snapshots, PART, top_k=2, seed=0)
    assert result.assignment[(3, "lora")] == "weight"
    assert result.assignment[(0, "lora")] == "taylor"
    assert "threshold" not in result.assignment.values()  # degenerate in every snapshot
    assert result.degenerate["threshold"] == [True, True]
    # ties go to registry order; random never takes part even when it scores highest
    tau = {"random": {(0, "lora"): 0.99}, "gradient": {(0, "lora"): 0.5}, "zeros": {(0, "lora"): 0.5}}
    assert assign(tau) == {(0, "lora"): "zeros"}
    # a degenerate-everywhere criterion is excluded even when its τ is highest ...
    tau = {"weight": {(0, "lora"): 0.9}, "taylor": {(0, "lora"): 0.4}}
    assert assign(tau, always_degenerate=["weight"]) == {(0, "lora"): "taylor"}
    # ... unless every criterion was degenerate
    assert assign(tau, always_degenerate=["weight", "taylor"]) == {(0, "lora"): "weight"}


def test_pick_counts(snapshots):
    counts = pick_counts(snapshots, top_k=2, seed=0)
    assert counts["weight"][(3, "lora")] == 2 and counts["weight"][(3, "adapter")] == 2
    assert counts["weight"][(0, "lora")] == 0
    assert counts["taylor"][(0, "lora")] == 2
    assert sum(counts["threshold"].values()) == 4  # tied: k=2 picks in each of 2 snapshots
    assert set(counts["weight"]) == set(UNITS)


def test_warmup_json_round_trip_and_transfer(snapshots):
    result = summarise_warmup(snapshots, PART, top_k=2, seed=0)
    data = json.loads(json.dumps(result.to_json()))
    assert data["assignment"]["b3:lora"] == "weight"
    assert data["tendencies"]["taylor"]["b0:lora"] == pytest.approx(1.0)
    assert data["pick_counts"]["weight"]["3:lora"] == 2
    assert data["partition"] == {"num_layers": 4, "cuts": [0.2, 0.5, 0.8], "boundaries": [1, 2, 3]}
    s_h = load_assignment(data)
    assert s_h == result.assignment
    # transfer to a 6-layer model: layers 1-2 share block 1
    six = unit_assignment([(1, "lora"), (2, "adapter"), (5, "lora")], Partition(6), s_h)
    assert six == {(1, "lora"): s_h[(1, "lora")], (2, "adapter"): s_h[(1, "adapter")], (5, "lora"): "weight"}


def test_load_and_assignment_errors():
    with pytest.raises(UserError, match="no 'assignment'"):
        load_assignment({"tendencies": {}})
    with pytest.raises(UserError, match="unknown criterion 'magic'"):
        load_assignment({"assignment": {"b0:lora": "magic"}})
    with pytest.raises(UserError, match="partition key"):
        load_assignment({"assignment": {"0:lora": "weight"}})
    with pytest.raises(UserError, match="no criterion for partition 'b0:dora'"):
        unit_assignment([(0, "dora")], PART, {(0, "lora"): "weight"})
    same = constant_assignment([(0, "lora"), (1, "lora")], "taylor")
    assert same == {(0, "lora"): "taylor", (1, "lora"): "taylor"}
    with pytest.raises(UserError):
        constant_assignment([(0, "lora")], "nope")


def test_pick_count_ties_are_broken_with_the_snapshot_seed():
    # mutation audit M39: a degenerate criterion ties every unit, so only the seed picks its top-k;
    # snapshot t must use seed + t (with one seed for all snapshots the same units would be picked twice)
    from prunepeft.pruning.selection import select_top_k

    flat = {u: 0.3 for u in UNITS}
    snaps = [snap(threshold=flat), snap(threshold=flat)]
    seed = 3
    expected = {u: 0 for u in UNITS}
    for t, s in enumerate(snaps):
        for u in select_top_k(s["threshold"].rank, 2, seed + t):
            expected[u] += 1
    same_seed = {u: 0 for u in UNITS}
    for s in snaps:
        for u in select_top_k(s["threshold"].rank, 2, seed):
            same_seed[u] += 1
    assert expected != same_seed  # the case discriminates
    assert pick_counts(snaps, top_k=2, seed=seed)["threshold"] == expected


def test_criterion_degenerate_in_some_snapshots_stays_a_candidate():
    # mutation audit M28: taylor ties in snapshot 1 but finds layer 3 prunable in snapshot 2: it
    # keeps its place in the argmax and wins b3:lora over weight (which favours the shallow layers)
    flat = {u: 0.3 for u in UNITS}
    snaps = [snap(weight=favour([3, 2, 1, 0]), taylor=flat), snap(weight=favour([3, 2, 1, 0]), taylor=favour([0, 1, 2, 3]))]
    result = summarise_warmup(snaps, PART, top_k=2, seed=0)
    assert result.degenerate["taylor"] == [True, False]
    assert result.assignment[(3, "lora")] == "taylor"
