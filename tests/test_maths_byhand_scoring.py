"""By-hand checks of the scores and of the criterion per block (issue 25, Deliver 4).

Covers prunepeft/pruning/scoring.py (θ̃ by min-max, ρ by percentile rank, the type offset, a
snapshot's scores), partitions.py (layers into blocks, the block keys) and assign_rules.py (the
tendency, consensus and agreement scores that assign a criterion to each key). Every expected
number here is worked out in the test from docs/method.md's formulas, never by calling the function
under test: several snapshots, ties, unequal ρ, keys with unequal unit counts. These are among the
tests `make mutation` runs (seconds, no model); the last sections kill named survivors of its runs.
"""
from __future__ import annotations

import math

import pytest
from maths_byhand_helpers import A, B, C, D, E, _rho, snap

from prunepeft.errors import UserError
from prunepeft.pruning import assign_rules as ar
from prunepeft.pruning.partitions import Partition, boundaries, key_str, parse_key
from prunepeft.pruning.scoring import min_max, percentile_ranks, remove_type_offset, scores_from_oriented


# ---------------------------------------------------------------------------------- scoring
def test_min_max_by_hand_and_the_degenerate_edge():
    theta, deg = min_max({A: 1.0, B: 3.0, C: 2.0, D: 7.0})
    assert not deg and theta == pytest.approx({A: 0.0, B: 1 / 3, C: 1 / 6, D: 1.0})
    assert min_max({A: 1.0, B: 1.0 + 5e-9}) == ({A: 0.5, B: 0.5}, True)
    assert min_max({A: 1.0, B: 1.0 + 1e-8}) == ({A: 0.5, B: 0.5}, True)  # range <= 1e-8 is degenerate
    theta, deg = min_max({A: 1.0, B: 1.0 + 3e-8})
    assert not deg and theta[B] == pytest.approx(1.0)
    assert min_max({}) == ({}, True)


def test_percentile_ranks_average_ties_and_degenerate():
    rho = percentile_ranks({A: 5.0, B: 1.0, C: 5.0, D: 3.0})
    assert rho == {B: 1 / 4, D: 2 / 4, A: 3.5 / 4, C: 3.5 / 4}
    assert percentile_ranks({A: 5.0, B: 1.0, C: 5.0, D: 3.0}, degenerate=True) == {u: 5 / 8 for u in (A, B, C, D)}
    assert percentile_ranks({}) == {}
    assert percentile_ranks({E: -2.0}) == {E: 1.0}


def test_remove_type_offset_unequal_type_sizes():
    out = remove_type_offset({A: 1.0, C: 2.0, E: 3.0, B: 5.0, D: 5.0 + 1e-10})
    sd = math.sqrt(2 / 3)  # population std of 1, 2, 3
    assert out[A] == pytest.approx(-1 / sd) and out[C] == pytest.approx(0.0) and out[E] == pytest.approx(1 / sd)
    assert out[B] == 0.0 and out[D] == 0.0  # no spread within the adapters
    assert remove_type_offset({B: 9.0}) == {B: 0.0}
    lone = remove_type_offset({A: 2.0, C: 6.0, B: 1.0})
    assert lone[A] == pytest.approx(-1.0) and lone[C] == pytest.approx(1.0) and lone[B] == 0.0


def test_scores_from_oriented_keeps_raw_sorts_and_refuses_non_finite():
    s = scores_from_oriented("w", {C: 2.0, A: 4.0, B: 0.0}, raw={C: -2.0, A: -4.0, B: 0.0})
    assert list(s.oriented) == [A, B, C] and list(s.raw) == [A, B, C]
    assert s.raw == {A: -4.0, B: 0.0, C: -2.0} and s.normalised == {A: 1.0, B: 0.0, C: 0.5}
    assert s.rank == {A: 1.0, B: 1 / 3, C: 2 / 3} and not s.degenerate and s.name == "w"
    assert scores_from_oriented("w", {A: 1.0}).raw == {A: 1.0}
    with pytest.raises(ValueError, match="non-finite"):
        scores_from_oriented("w", {A: float("nan"), B: 1.0})
    with pytest.raises(ValueError, match="'w'"):
        scores_from_oriented("w", {A: float("inf")})
    js = s.to_json()
    assert js["raw"] == {"0:lora": -4.0, "1:adapter": 0.0, "2:lora": -2.0} and js["degenerate"] is False
    assert set(js) == {"degenerate", "raw", "oriented", "normalised", "rank"}


# ---------------------------------------------------------------------------------- partitions
def test_boundaries_by_hand_and_the_half_guard():
    assert boundaries(24) == [5, 12, 19] and boundaries(6) == [1, 3, 5] and boundaries(4) == [1, 2, 3]
    assert boundaries(5, [0.7]) == [4]  # 0.7 * 5 = 3.4999999999999996: the 1e-9 guard rounds it up
    assert boundaries(10, [0.25, 0.25]) == [3, 3]  # equal cuts allowed (an empty block)
    for bad in ([0.0], [1.0], [0.5, 0.2], [-0.1]):
        with pytest.raises(UserError, match="partition_cuts"):
            boundaries(8, bad)
    with pytest.raises(UserError, match="at least one layer"):
        boundaries(0)


def test_partition_blocks_with_empty_blocks_keys_and_groups():
    part = Partition(2)
    assert part.bounds == (0, 1, 2) and part.num_blocks == 4
    assert part.blocks() == [[], [0], [1], []]
    six = Partition(6, (0.2, 0.5, 0.8))
    assert six.blocks() == [[0], [1, 2], [3, 4], [5]] and six.layers(3) == [5]
    assert six.key((4, "adapter")) == (2, "adapter")
    uids = [(5, "lora"), (0, "adapter"), (2, "lora"), (1, "lora")]
    assert six.keys(uids) == [(0, "adapter"), (1, "lora"), (3, "lora")]
    assert six.group(uids) == {(0, "adapter"): [(0, "adapter")], (1, "lora"): [(2, "lora"), (1, "lora")],
                               (3, "lora"): [(5, "lora")]}
    with pytest.raises(ValueError):
        six.block(6)
    with pytest.raises(ValueError):
        six.block(-1)
    assert Partition(3, [0.5]).cuts == (0.5,)


def test_partition_key_text_round_trip():
    assert key_str((1, "lora")) == "b1:lora" and parse_key("b12:adapter") == (12, "adapter")
    assert parse_key("b1:a:b") == (1, "a:b")  # the type is everything after the first ':'
    for bad in ("x1:lora", "b:lora", "b1:", "b1lora", "bx:lora"):
        with pytest.raises(UserError, match="bad partition key"):
            parse_key(bad)


# ---------------------------------------------------------------------------------- assignment rules
PART = Partition(6)  # blocks 0 | 1-2 | 3-4 | 5
U = [(0, "lora"), (1, "lora"), (2, "lora"), (3, "adapter"), (5, "adapter")]  # key (1, lora) holds two units
S1 = snap(w={U[0]: 1.0, U[1]: 5.0, U[2]: 3.0, U[3]: 3.0, U[4]: 0.0},
          g={U[0]: 4.0, U[1]: 0.0, U[2]: 2.0, U[3]: 9.0, U[4]: 1.0})
S2 = snap(w={U[0]: 2.0, U[1]: 1.0, U[2]: 0.0, U[3]: 7.0, U[4]: 7.0},
          g={U[0]: 0.0, U[1]: 3.0, U[2]: 6.0, U[3]: 1.0, U[4]: 2.0})


def _key_mean(values_per_snapshot):
    out = {}
    for key in PART.keys(U):
        vals = [v[u] for v in values_per_snapshot for u in U if PART.key(u) == key]
        out[key] = sum(vals) / len(vals)
    return out


def test_tendency_two_snapshots_unequal_keys_by_hand():
    got = ar.tendency_scores([S1, S2], PART, ["w", "g"], ["w", "g"])
    for c in ("w", "g"):
        rho = [{u: _rho(s[c].oriented, u) for u in U} for s in (S1, S2)]
        assert got[c] == pytest.approx(_key_mean(rho))
    assert list(got["w"]) == sorted(got["w"])
    assert got["w"][(1, "lora")] == pytest.approx((1.0 + 0.7 + 0.4 + 0.2) / 4)  # ties: U2, U3 share 3.5 / 5


def test_consensus_by_hand_random_left_out_of_the_centre():
    rnd = {U[0]: 9.0, U[1]: 0.0, U[2]: 4.0, U[3]: 1.0, U[4]: 2.0}
    s1 = {**S1, **snap(random=rnd)}
    s2 = {**S2, **snap(random=dict(reversed(list(rnd.items()))))}
    got = ar.consensus_scores([s1, s2], PART, ["w", "g", "random"], ["w", "g", "random"])
    centre = [{u: (_rho(s["w"].oriented, u) + _rho(s["g"].oriented, u)) / 2 for u in U} for s in (s1, s2)]
    for c in ("w", "g", "random"):
        dev = [{u: -abs(_rho(s[c].oriented, u) - centre[t][u]) for u in U} for t, s in enumerate((s1, s2))]
        assert got[c] == pytest.approx(_key_mean(dev))
    # with only `random` as a candidate, the centre comes from the criteria
    only = ar.consensus_scores([s1], PART, ["w", "g"], ["random"])
    assert only["w"] == pytest.approx(_key_mean([{u: -abs(_rho(s1["w"].oriented, u) - centre[0][u]) for u in U}]))


def test_importance_percentiles_and_agreement_by_hand():
    imp1 = {U[0]: 0.5, U[1]: -0.1, U[2]: 0.5, U[3]: 2.0, U[4]: 0.0}
    assert ar.importance_percentiles(imp1) == {U[3]: 0.2, U[0]: 0.5, U[2]: 0.5, U[4]: 0.8, U[1]: 1.0}
    imp2 = {U[0]: 1.0, U[1]: 2.0, U[2]: 3.0, U[3]: 4.0, U[4]: 5.0}
    got = ar.agreement_scores([S1, S2], PART, ["w", "g"], ["w", "g"], [imp1, imp2])
    pimp = [ar.importance_percentiles(imp1), {U[0]: 1.0, U[1]: 0.8, U[2]: 0.6, U[3]: 0.4, U[4]: 0.2}]
    for c in ("w", "g"):
        dev = [{u: -abs(_rho(s[c].oriented, u) - pimp[t][u]) for u in U} for t, s in enumerate((S1, S2))]
        assert got[c] == pytest.approx(_key_mean(dev))
    with pytest.raises(ValueError, match="one importance map per warm-up snapshot \\(2\\), got 1"):
        ar.agreement_scores([S1, S2], PART, ["w"], ["w"], [imp1])
    with pytest.raises(ValueError, match="got none"):
        ar.agreement_scores([S1], PART, ["w"], ["w"], None)


def test_get_assign_rule():
    assert ar.get_assign_rule("consensus") is ar.consensus_scores
    with pytest.raises(UserError, match="search.warmup.assign"):
        ar.get_assign_rule("vote")


# ---------------------------------------------------------------------------------- mutation survivors
def test_type_offset_spread_exactly_at_the_degenerate_edge():
    assert remove_type_offset({A: 0.0, C: 2e-8}) == {A: 0.0, C: 0.0}  # population std 1e-8 <= 1e-8
    out = remove_type_offset({A: 0.0, C: 4e-8})
    assert out[A] == pytest.approx(-1.0) and out[C] == pytest.approx(1.0)


class _Crit:
    """A stand-in criterion: raw = the unit's statistic, oriented = minus raw (lower is more prunable)."""

    def __init__(self, name):
        self.name = name

    def raw(self, stats, ctx):
        return {u: float(v) for u, v in stats.items()}

    def orient(self, raw):
        return {u: -v for u, v in raw.items()}


def test_score_snapshot_orients_normalises_and_type_norms(monkeypatch):
    from prunepeft.pruning import scoring
    from prunepeft.pruning.criteria.base import CriterionContext

    monkeypatch.setattr(scoring, "get_criterion", _Crit)
    stats = {A: 3.0, B: 1.0, C: 5.0, D: 2.0}
    ctx = CriterionContext(seed=0, type_norm="zscore", type_norm_criteria=("t",))
    out = scoring.score_snapshot(stats, ["w", "t"], ctx)
    assert list(out) == ["w", "t"]
    assert out["w"].raw == {A: 3.0, B: 1.0, C: 5.0, D: 2.0} and out["w"].oriented == {A: -3.0, B: -1.0, C: -5.0, D: -2.0}
    assert out["w"].rank == {C: 0.25, A: 0.5, D: 0.75, B: 1.0}
    # t is standardised within each type: lora A, C (-3, -5) -> (+1, -1); adapter B, D (-1, -2) -> (+1, -1)
    assert out["t"].oriented == pytest.approx({A: 1.0, B: 1.0, C: -1.0, D: -1.0})
    assert out["t"].raw == out["w"].raw
    plain = scoring.score_snapshot(stats, ["t"], CriterionContext(type_norm="none", type_norm_criteria=("t",)))
    assert plain["t"].oriented == out["w"].oriented
    js = scoring.snapshot_to_json(out)
    assert list(js) == ["w", "t"] and js["w"]["rank"]["2:lora"] == 0.25


# ------------------------------------------------------ mutation survivors (issue 25, Deliver 5)
# Each test below kills named survivors of the mutmut run (benchmarks/results/mutation/).
def test_block_error_names_the_last_valid_layer():
    part = Partition(6)  # 0 | 1-2 | 3-4 | 5
    for bad in (6, -1):
        with pytest.raises(ValueError) as err:
            part.block(bad)
        assert str(err.value) == f"layer {bad} outside 0..5"  # L - 1, not L + 1 or L - 2
    with pytest.raises(ValueError) as err:
        Partition(3, (0.5,)).block(3)
    assert str(err.value) == "layer 3 outside 0..2"


def test_percentile_ranks_are_taken_on_float64_values():
    # Python ints 2**53 and 2**53 + 1 are equal as float64 (the values Θ̃ is computed from): they tie.
    rho = percentile_ranks({A: 0, B: 2**53, C: 2**53 + 1})
    assert rho == {A: 1 / 3, B: 2.5 / 3, C: 2.5 / 3}


def test_scores_from_oriented_ties_every_unit_of_a_degenerate_criterion():
    # range 2e-9 <= 1e-8: degenerate, so ρ ties every unit ((n + 1) / 2n) although the values differ
    s = scores_from_oriented("w", {A: 1.0, B: 1.0 + 1e-9, C: 1.0 + 5e-10, D: 1.0 + 2e-9})
    assert s.degenerate and s.normalised == {A: 0.5, B: 0.5, C: 0.5, D: 0.5}
    assert s.rank == {A: 5 / 8, B: 5 / 8, C: 5 / 8, D: 5 / 8}
    s3 = scores_from_oriented("w", {C: 2.0 + 1e-9, A: 2.0, E: 2.0 + 3e-9})
    assert s3.degenerate and s3.rank == {A: 2 / 3, C: 2 / 3, E: 2 / 3}


class _SeededCrit(_Crit):
    """A stand-in criterion whose raw value reads the context (like `random`, `zeros`, `threshold`)."""

    def raw(self, stats, ctx):
        return {u: float(v) + ctx.seed for u, v in stats.items()}


def test_score_snapshot_passes_the_context_and_names_each_criterion(monkeypatch):
    from prunepeft.pruning import scoring
    from prunepeft.pruning.criteria.base import CriterionContext

    monkeypatch.setattr(scoring, "get_criterion", _SeededCrit)
    stats = {A: 3.0, B: 1.0, C: 5.0}
    out = scoring.score_snapshot(stats, ["w", "g"], CriterionContext(seed=10))
    assert out["w"].raw == {A: 13.0, B: 11.0, C: 15.0} and out["w"].oriented == {A: -13.0, B: -11.0, C: -15.0}
    assert out["w"].name == "w" and out["g"].name == "g"


def test_min_max_range_of_exactly_1e8_is_degenerate():
    # 1e-8 − 0.0 is exactly DEGENERATE_RANGE (1.0 + 1e-8 − 1.0 is not): the edge itself is degenerate
    assert min_max({A: 0.0, B: 1e-8}) == ({A: 0.5, B: 0.5}, True)
    assert min_max({C: -1e-8, A: 0.0, B: -5e-9}) == ({C: 0.5, A: 0.5, B: 0.5}, True)
    theta, deg = min_max({A: 0.0, B: 2e-8, C: 1.5e-8})
    assert not deg and theta == pytest.approx({A: 0.0, B: 1.0, C: 0.75})
