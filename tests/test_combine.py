"""Eq. (1), the no-partition ablation and the reference variant against hand computations."""
from __future__ import annotations

import math

import pytest

from prunepeft.pruning.combine import combine_no_partition, combine_paper, combine_rank, combine_reference, sigmoid, softmax
from prunepeft.pruning.scoring import scores_from_oriented

U0, U1, U2, U3 = (0, "lora"), (1, "lora"), (2, "adapter"), (3, "adapter")


@pytest.fixture
def snapshot():
    # weight:  Θ̃ = (1, .5, .75, 0),  ρ = (1, .5, .75, .25)
    # taylor:  Θ̃ = (0, 0, 1, .5),    ρ = (.375, .375, 1, .75)  (U0, U1 tied: average rank 1.5/4)
    return {
        "weight": scores_from_oriented("weight", {U0: -1.0, U1: -3.0, U2: -2.0, U3: -5.0}),
        "taylor": scores_from_oriented("taylor", {U0: 0.0, U1: 0.0, U2: 10.0, U3: 5.0}),
    }


def _softmax(xs):
    e = [math.exp(x) for x in xs]
    return [v / sum(e) for v in e]


def test_eq1_by_hand(snapshot):
    assignment = {U0: "weight", U1: "weight", U2: "taylor", U3: "taylor"}
    out = combine_paper(snapshot, assignment)
    # k_i = sigmoid(ρ_i) under S_i; logit = k_i·Θ̃_i
    logits = [
        0.7310585786300049 * 1.0,  # U0 weight: ρ=1,   Θ̃=1
        0.6224593312018546 * 0.5,  # U1 weight: ρ=.5,  Θ̃=.5
        0.7310585786300049 * 1.0,  # U2 taylor: ρ=1,   Θ̃=1
        0.6791786991753930 * 0.5,  # U3 taylor: ρ=.75, Θ̃=.5
    ]
    expected = _softmax(logits)
    assert [out.p[u] for u in (U0, U1, U2, U3)] == pytest.approx(expected, abs=1e-12)
    assert out.rho == pytest.approx({U0: 1.0, U1: 0.5, U2: 1.0, U3: 0.75})
    assert out.theta == pytest.approx({U0: 1.0, U1: 0.5, U2: 1.0, U3: 0.5})
    assert out.k[U1] == pytest.approx(sigmoid(0.5))
    assert out.criteria[U2] == ["taylor"]
    assert sum(out.p.values()) == pytest.approx(1.0)


def test_eq1_single_criterion_follows_that_criterion(snapshot):
    out = combine_paper(snapshot, {u: "weight" for u in (U0, U1, U2, U3)})
    assert sorted(out.p, key=out.p.get, reverse=True) == [U0, U2, U1, U3]


def test_eq1_assignment_must_cover_scored_units(snapshot):
    with pytest.raises(ValueError, match="cover exactly"):
        combine_paper(snapshot, {U0: "weight"})
    with pytest.raises(ValueError, match="not scored"):
        combine_paper(snapshot, {u: "gradient" for u in (U0, U1, U2, U3)})


def test_no_partition_by_hand(snapshot):
    out = combine_no_partition(snapshot, ["weight", "taylor"])
    w_rho, w_th = (1.0, 0.5, 0.75, 0.25), (1.0, 0.5, 0.75, 0.0)
    t_rho, t_th = (0.375, 0.375, 1.0, 0.75), (0.0, 0.0, 1.0, 0.5)
    logits = [
        (sigmoid(w_rho[i]) * w_th[i] + sigmoid(t_rho[i]) * t_th[i]) / 2 for i in range(4)
    ]
    assert [out.p[u] for u in (U0, U1, U2, U3)] == pytest.approx(_softmax(logits), abs=1e-12)
    assert max(out.p, key=out.p.get) == U2


def test_reference_variant_by_hand(snapshot):
    k = 2
    out = combine_reference(snapshot, {u: ["weight", "taylor"] for u in (U0, U1, U2, U3)}, k)
    # r_c = 0-based rank, 0 = most prunable (ties averaged); softmax_c over Θ̃_c
    r_w, r_t = (0.0, 2.0, 1.0, 3.0), (2.5, 2.5, 0.0, 1.0)
    s_w, s_t = _softmax([1.0, 0.5, 0.75, 0.0]), _softmax([0.0, 0.0, 1.0, 0.5])
    raw = [
        5 * sigmoid((k - 1) - r_w[i]) * s_w[i] + 5 * sigmoid((k - 1) - r_t[i]) * s_t[i] for i in range(4)
    ]
    assert [out.logit[u] for u in (U0, U1, U2, U3)] == pytest.approx(raw, abs=1e-12)
    assert [out.p[u] for u in (U0, U1, U2, U3)] == pytest.approx([v / sum(raw) for v in raw], abs=1e-12)
    assert out.method == "reference"


def test_reference_with_one_criterion_per_unit(snapshot):
    out = combine_reference(snapshot, {U0: ["weight"], U1: ["weight"], U2: ["taylor"], U3: ["taylor"]}, 4)
    s_w, s_t = _softmax([1.0, 0.5, 0.75, 0.0]), _softmax([0.0, 0.0, 1.0, 0.5])
    assert out.logit[U0] == pytest.approx(5 * sigmoid(3 - 0.0) * s_w[0])
    assert out.logit[U3] == pytest.approx(5 * sigmoid(3 - 1.0) * s_t[3])


def test_softmax_is_stable():
    p = softmax({U0: 1000.0, U1: 1000.0, U2: 0.0})
    assert p[U0] == pytest.approx(0.5) and p[U2] == pytest.approx(0.0)


def test_json_forms(snapshot):
    import json

    from prunepeft.pruning.scoring import snapshot_to_json

    out = combine_paper(snapshot, {U0: "weight", U1: "weight", U2: "taylor", U3: "taylor"})
    data = json.loads(json.dumps(out.to_json()))
    assert data["criteria"]["2:adapter"] == ["taylor"]
    assert data["p"]["0:lora"] == pytest.approx(out.p[U0])
    scores = json.loads(json.dumps(snapshot_to_json(snapshot)))
    assert scores["taylor"]["rank"]["0:lora"] == pytest.approx(0.375)
    assert scores["weight"]["normalised"]["3:adapter"] == 0.0
    assert scores["weight"]["degenerate"] is False


def test_register_combination_adds_refuses_a_clash_and_allows_the_same_function(monkeypatch):
    from prunepeft.pruning import combine as cb

    monkeypatch.setattr(cb, "COMBINATIONS", dict(cb.COMBINATIONS))  # the registry is restored afterwards

    def mine(snapshot, unit_criteria, k):
        return combine_rank(snapshot, unit_criteria, k)

    cb.register_combination("mine", mine)  # a new name
    assert cb.COMBINATIONS["mine"] is mine and cb.get_combination("mine") is mine
    cb.register_combination("mine", mine)  # the same function again: fine
    assert cb.COMBINATIONS["mine"] is mine
    with pytest.raises(ValueError) as err:
        cb.register_combination("mine", combine_rank)
    assert str(err.value) == "combination rule 'mine' is already registered"
    assert cb.COMBINATIONS["mine"] is mine
    with pytest.raises(ValueError) as err:
        cb.register_combination("paper", mine)  # a built-in cannot be replaced
    assert str(err.value) == "combination rule 'paper' is already registered"
    cb.register_combination("rank", combine_rank)  # a built-in registered with itself: fine
    assert cb.get_combination("rank") is combine_rank
