"""By-hand checks of the method's maths on asymmetric fixtures (issue 25, Deliver 4).

Every expected number here is worked out in the test from docs/method.md's formulas, never by
calling the function under test: several snapshots, ties, non-square matrices, unequal ρ, keys with
unequal unit counts, unequal unit sizes. These are the tests `make mutation` runs (seconds, no model).
"""
from __future__ import annotations

import math
import statistics

import numpy as np
import pytest
import torch

from prunepeft.errors import UserError
from prunepeft.pruning import assign_rules as ar
from prunepeft.pruning import combine as cb
from prunepeft.pruning import selection as sel
from prunepeft.pruning.budget import budget_params, check_budget
from prunepeft.pruning.partitions import Partition, boundaries, key_str, parse_key
from prunepeft.arms.rank_stage import module_stop, select_round_for_ranks, step_rank_scores
from prunepeft.pruning.scoring import min_max, percentile_ranks, remove_type_offset, scores_from_oriented

A, B, C, D, E = (0, "lora"), (1, "adapter"), (2, "lora"), (3, "adapter"), (4, "lora")


def snap(**criteria):
    """{criterion: CriterionScores} from {criterion: {uid: oriented}}."""
    return {name: scores_from_oriented(name, values) for name, values in criteria.items()}


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


# ---------------------------------------------------------------------------------- combine
FIX = dict(w={A: 4.0, B: 1.0, C: 3.0, D: 1.0, E: 0.0},  # a tie (B, D), unequal spread
           g={A: 0.0, B: 10.0, C: 2.0, D: 7.0, E: 1.0})


def _theta(values, u):
    lo, hi = min(values.values()), max(values.values())
    return (values[u] - lo) / (hi - lo)


def _rho(values, u):
    below = sum(v < values[u] for v in values.values())
    ties = sum(v == values[u] for v in values.values())
    return (below + (ties + 1) / 2) / len(values)


def _softmax(x):
    m = max(x.values())
    e = {u: math.exp(v - m) for u, v in x.items()}
    s = sum(e.values())
    return {u: v / s for u, v in e.items()}


def test_sigmoid_and_softmax_by_hand():
    assert cb.sigmoid(0.0) == 0.5 and cb.sigmoid(2.0) == pytest.approx(1 / (1 + math.exp(-2)))
    p = cb.softmax({A: 1.0, B: 3.0, C: -1.0})
    assert p == pytest.approx(_softmax({A: 1.0, B: 3.0, C: -1.0})) and sum(p.values()) == pytest.approx(1.0)
    assert cb.softmax({}) == {}
    big = cb.softmax({A: 1000.0, B: 999.0})  # stable: no overflow
    assert big[A] == pytest.approx(1 / (1 + math.exp(-1)))


def test_combine_paper_mixed_assignment_by_hand():
    s = snap(**FIX)
    assign = {A: "w", B: "g", C: "w", D: "g", E: "w"}
    out = cb.combine_paper(s, assign)
    rho = {u: _rho(FIX[c], u) for u, c in assign.items()}
    theta = {u: _theta(FIX[c], u) for u, c in assign.items()}
    logit = {u: theta[u] / (1 + math.exp(-rho[u])) for u in assign}
    assert out.method == "paper"
    assert out.rho == pytest.approx(rho) and out.theta == pytest.approx(theta)
    assert out.k == pytest.approx({u: 1 / (1 + math.exp(-rho[u])) for u in assign})
    assert out.logit == pytest.approx(logit) and out.p == pytest.approx(_softmax(logit))
    assert out.criteria == {u: [c] for u, c in assign.items()}
    assert out.p[A] == pytest.approx(out.p[B]) and out.p[A] > out.p[C]  # each criterion's top: θ̃ = ρ = 1
    with pytest.raises(ValueError, match="exactly"):
        cb.combine_paper(s, {A: "w", B: "g"})
    with pytest.raises(ValueError, match="not scored"):
        cb.combine_paper(s, {u: "zz" for u in assign})


def test_combine_no_partition_mean_over_criteria():
    s = snap(**FIX)
    out = cb.combine_no_partition(s, ["w", "g"])
    logit = {u: sum(_theta(FIX[c], u) / (1 + math.exp(-_rho(FIX[c], u))) for c in ("w", "g")) / 2 for u in FIX["w"]}
    assert out.logit == pytest.approx(logit) and out.p == pytest.approx(_softmax(logit))
    assert out.criteria[A] == ["w", "g"] and out.k == {} and out.method == "no_partition"
    with pytest.raises(ValueError):
        cb.combine_no_partition(s, [])
    # the registry: one criterion per unit is Eq. (1), several is the no-partition mean
    reg = cb.COMBINATIONS["paper"](s, {u: ["w", "g"] for u in FIX["w"]}, 2)
    assert reg.method == "no_partition" and reg.logit == pytest.approx(logit)
    assert cb.COMBINATIONS["paper"](s, {u: ["g"] for u in FIX["w"]}, 2).method == "paper"


def test_combine_reference_by_hand_k2():
    s = snap(**FIX)
    uc = {A: ["w"], B: ["g", "w"], C: ["w"], D: ["g"], E: ["g"]}
    n, k = 5, 2
    soft = {c: _softmax({u: _theta(FIX[c], u) for u in FIX[c]}) for c in ("w", "g")}

    def term(c, u):
        r = n * (1 - _rho(FIX[c], u))
        return 5 / (1 + math.exp(-((k - 1) - r))) * soft[c][u]

    logit = {u: sum(term(c, u) for c in cs) for u, cs in uc.items()}
    total = sum(logit.values())
    out = cb.combine_reference(s, uc, k)
    assert out.logit == pytest.approx(logit) and out.p == pytest.approx({u: v / total for u, v in logit.items()})
    assert out.criteria[B] == ["g", "w"] and out.method == "reference"
    with pytest.raises(ValueError, match="k must be"):
        cb.combine_reference(s, uc, 0)
    with pytest.raises(ValueError, match="exactly"):
        cb.combine_reference(s, {A: ["w"]}, 1)


def test_combine_rank_mean_rho_and_rho_only_for_one_criterion():
    s = snap(**FIX)
    uc = {A: ["w"], B: ["g", "w"], C: ["w"], D: ["g"], E: ["w", "g"]}
    logit = {u: statistics.mean(_rho(FIX[c], u) for c in cs) for u, cs in uc.items()}
    out = cb.combine_rank(s, uc)
    total = sum(logit.values())
    assert out.logit == pytest.approx(logit) and out.p == pytest.approx({u: v / total for u, v in logit.items()})
    assert out.rho == {} and out.method == "rank"
    single = cb.combine_rank(s, {u: ["g"] for u in FIX["g"]})
    assert single.rho == pytest.approx({u: _rho(FIX["g"], u) for u in FIX["g"]})


def test_zscore_median_mad_by_hand_odd_even_and_zero_mad():
    s = snap(**FIX)
    # g: 0, 10, 2, 7, 1 -> median 2, |dev| 2, 8, 0, 5, 1 -> MAD 2
    assert cb.zscore_values(s, "g") == pytest.approx({A: -1.0, B: 4.0, C: 0.0, D: 2.5, E: -0.5})
    even = snap(h={A: 1.0, B: 2.0, C: 4.0, D: 9.0})  # median 3, |dev| 2, 1, 1, 6 -> MAD 1.5
    assert cb.zscore_values(even, "h") == pytest.approx({A: -4 / 3, B: -2 / 3, C: 2 / 3, D: 4.0})
    tied = snap(h={A: 1.0, B: 1.0, C: 1.0, D: 5.0})  # MAD 0 -> divide by 1
    assert cb.zscore_values(tied, "h") == pytest.approx({A: 0.0, B: 0.0, C: 0.0, D: 4.0})
    flat = snap(h={A: 1.0, B: 1.0 + 1e-12, C: 1.0})  # degenerate -> 0 everywhere
    assert cb.zscore_values(flat, "h") == {A: 0.0, B: 0.0, C: 0.0}


def test_combine_zscore_shifted_share_by_hand():
    s = snap(**FIX)
    uc = {A: ["g"], B: ["g", "w"], C: ["w"], D: ["g"], E: ["w"]}
    zw = {A: 3.0, B: 0.0, C: 2.0, D: 0.0, E: -1.0}  # w: 4,1,3,1,0 -> median 1, MAD 1 (devs 3,0,2,0,1)
    zg = {A: -1.0, B: 4.0, C: 0.0, D: 2.5, E: -0.5}
    logit = {A: zg[A], B: (zg[B] + zw[B]) / 2, C: zw[C], D: zg[D], E: zw[E]}
    out = cb.combine_zscore(s, uc)
    assert out.logit == pytest.approx(logit)
    low = min(logit.values())
    total = sum(v - low for v in logit.values())
    assert out.p == pytest.approx({u: (v - low) / total for u, v in logit.items()})
    assert out.p[E] == 0.0 and out.p[A] == 0.0 and out.p[D] > out.p[B] and out.method == "zscore"
    flat = snap(h={A: 1.0, B: 1.0, C: 1.0})
    assert cb.combine_zscore(flat, {u: ["h"] for u in (A, B, C)}).p == pytest.approx({A: 1 / 3, B: 1 / 3, C: 1 / 3})


def test_get_combination_and_to_json():
    assert cb.get_combination("zscore") is cb.combine_zscore
    with pytest.raises(UserError, match="strategy.combine"):
        cb.get_combination("median")
    out = cb.combine_paper(snap(**FIX), {u: "w" for u in FIX["w"]}).to_json()
    assert out["method"] == "paper" and set(out["p"]) == {"0:lora", "1:adapter", "2:lora", "3:adapter", "4:lora"}
    assert out["criteria"]["0:lora"] == ["w"] and set(out) == {"method", "p", "logit", "criteria", "k", "rho", "theta"}


# ---------------------------------------------------------------------------------- selection
def test_removal_order_descending_and_ties_by_the_seed_permutation():
    p = {A: 0.1, B: 0.3, C: 0.3, D: 0.2, E: 0.3}
    for seed in (0, 1, 7, 123):
        perm = np.random.default_rng(seed).permutation(5)
        uids = sorted(p)
        tied = sorted([u for u in uids if p[u] == 0.3], key=lambda u: perm[uids.index(u)])
        assert sel.removal_order(p, seed) == [*tied, D, A]
    orders = {tuple(sel.removal_order(p, s)[:3]) for s in range(20)}
    assert len(orders) > 1  # the seed decides the ties
    assert sel.removal_order(p, 2**63 + 5) == sel.removal_order(p, 5)  # seeds are taken mod 2**63
    assert sel.removal_order(p, 2**63 + 5) != sel.removal_order(p, 2**63 + 5 - 2**62)


def test_select_top_k_bounds():
    p = {A: 0.5, B: 0.1, C: 0.4}
    assert sel.select_top_k(p, 0, 0) == [] and sel.select_top_k(p, 2, 0) == [A, C]
    assert sel.select_top_k(p, 9, 0) == [A, C, B]
    with pytest.raises(ValueError, match="k must be >= 0, got -1"):
        sel.select_top_k(p, -1, 0)


def test_select_for_budget_is_the_shortest_prefix_never_skipping():
    p = {A: 0.5, B: 0.3, C: 0.2}
    counts = {A: 10, B: 100, C: 5}
    assert sel.select_for_budget(p, counts, 115, 100, 0) == [A, B]  # never B alone
    assert sel.select_for_budget(p, counts, 115, 105, 0) == [A]  # exactly B: stop
    assert sel.select_for_budget(p, counts, 115, 104, 0) == [A, B]
    assert sel.select_for_budget(p, counts, 115, 115, 0) == []
    assert sel.select_for_budget(p, counts, 115, 0, 0) == [A, B, C]
    with pytest.raises(ValueError, match="budget"):
        sel.select_for_budget(p, counts, 115, -1, 0)
    with pytest.raises(ValueError, match="no parameter count"):
        sel.select_for_budget(p, {A: 10}, 115, 50, 0)


def test_select_round_top_k_or_last_prefix():
    p = {A: 0.4, B: 0.3, C: 0.2, D: 0.1}
    counts = {A: 30, B: 20, C: 40, D: 10}
    assert sel.select_round(p, 2, counts, 100, 49, 0) == ([A, B], False)  # 100 - 50 = 50 > 49
    assert sel.select_round(p, 2, counts, 100, 50, 0) == ([A, B], True)  # 50 <= 50: last
    assert sel.select_round(p, 2, counts, 100, 75, 0) == ([A], True)  # 70 <= 75 after A alone
    assert sel.select_round(p, 3, counts, 100, 95, 0) == ([A], True)


# ---------------------------------------------------------------------------------- rank stage
def test_module_stop_by_hand():
    assert module_stop(1000, 0.0) == 1000 and module_stop(1000, 0.5) == 2000
    assert module_stop(999, 0.25) == 1332  # floor(1332.0)
    assert module_stop(1000, 0.3) == 1428  # floor(1428.57)
    assert module_stop(700, 0.3) == 1000  # 700 / 0.7 lands a hair below 1000 in floating point


def test_select_round_for_ranks_stays_above_b():
    p = {A: 0.4, B: 0.3, C: 0.2, D: 0.1}
    counts = {A: 30, B: 20, C: 40, D: 10}
    assert select_round_for_ranks(p, 1, counts, 100, 50, 0) == ([A], False)  # 70 > 50
    # stop = B = 50: the prefix A, B reaches 50 <= B, so its last unit stays
    assert select_round_for_ranks(p, 2, counts, 100, 50, 0) == ([A], True)
    # stop 75 > B: the prefix reaching <= 75 is [A] (70), which stays above B = 40
    assert select_round_for_ranks(p, 2, counts, 100, 40, 0, stop=75) == ([A], True)
    assert select_round_for_ranks(p, 3, counts, 100, 10, 0, stop=60) == ([A, B], True)  # 50 > 10
    assert select_round_for_ranks(p, 3, counts, 100, 49, 0, stop=49) == ([A, B], True)  # 50 > 49
    with pytest.raises(ValueError, match="below the budget"):
        select_round_for_ranks(p, 1, counts, 100, 50, 0, stop=49)


def test_step_rank_scores_non_square_by_hand():
    down = torch.tensor([[1.0, -2.0, 0.5], [0.0, 3.0, -1.0]], requires_grad=True)  # r=2 x d_in=3
    up = torch.tensor([[2.0, 1.0], [-1.0, 0.0], [0.5, 4.0], [1.0, 1.0]], requires_grad=True)  # d_out=4 x r=2
    down.grad = torch.tensor([[0.5, 1.0, 2.0], [1.0, -1.0, 0.0]])
    up.grad = torch.tensor([[1.0, 0.0], [2.0, 1.0], [0.0, -1.0], [1.0, 1.0]])
    # rank i: |sum_j A_ij g_ij| / d_in + |sum_k B_ki g_ki| / d_out
    s0 = abs(1 * 0.5 + -2 * 1 + 0.5 * 2) / 3 + abs(2 * 1 + -1 * 2 + 0.5 * 0 + 1 * 1) / 4
    s1 = abs(0 * 1 + 3 * -1 + -1 * 0) / 3 + abs(1 * 0 + 0 * 1 + 4 * -1 + 1 * 1) / 4
    assert step_rank_scores(down, up).tolist() == pytest.approx([s0, s1])
    up.grad = None  # no gradient: that side scores 0
    assert step_rank_scores(down, up).tolist() == pytest.approx([abs(-0.5) / 3, 3 / 3])


# ---------------------------------------------------------------------------------- budget
def test_budget_params_by_hand():
    assert budget_params(None, 1234, 10**6) == 1234 and budget_params(5.0, 77, 10**6) == 77
    assert budget_params(0.75, None, 1001) == 7  # int(7.5075)
    assert budget_params(100, None, 999) == 999 and budget_params(0.75, None, 10**6) == 7500
    for bad in ((None, 0), (None, -3), (0.0, None), (-1.0, None), (100.5, None), (None, None)):
        with pytest.raises(UserError):
            budget_params(*bad, 1000)


def test_check_budget_edges_and_message():
    units = {A: 300, B: 120, C: 300}
    assert check_budget(120, units) is True and check_budget(719, units) is True
    assert check_budget(720, units) is False and check_budget(10**6, units) is False
    with pytest.raises(UserError, match="below the smallest unit \\(120 parameters\\).*model.adapter_bottleneck, model.lora_r"):
        check_budget(119, units)
    with pytest.raises(UserError, match="search space is empty"):
        check_budget(100, {})
    with pytest.raises(UserError, match="model.<size setting>"):
        check_budget(1, {"x": 5})


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
def test_messages_name_the_key_exactly():
    """Mutants that changed a message or a bound by one survived the tests above (make mutation)."""
    with pytest.raises(UserError) as err:
        budget_params(None, 0, 1000)
    assert str(err.value) == "budget.params must be positive, got 0"
    assert budget_params(None, 1, 1000) == 1  # 1 parameter is a (tiny) budget, not an error
    with pytest.raises(UserError) as err:
        budget_params(None, None, 1000)
    assert str(err.value) == "no budget: set budget.percent=<% of the base model> or budget.params=<count>"
    with pytest.raises(UserError) as err:
        budget_params(0.0, None, 1000)
    assert str(err.value) == "budget.percent must be in (0, 100], got 0.0"
    with pytest.raises(UserError) as err:
        check_budget(1, {})
    assert str(err.value) == "the search space is empty: set search_space=[lora, adapter] (or others)"
    with pytest.raises(UserError) as err:
        check_budget(1, {(0, "lora", "extra"): 5, "ab": 7})  # neither is a (layer, type) key
    assert str(err.value).endswith("or use smaller units (model.<size setting>)")
    with pytest.raises(UserError) as err:
        cb.get_combination("median")
    assert str(err.value) == "unknown strategy.combine 'median'; valid choices: paper, rank, reference, zscore"


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


def test_combine_errors_say_what_is_wrong():
    s = snap(**FIX)
    with pytest.raises(ValueError) as err:
        cb.combine_paper(s, {A: "w"})
    assert str(err.value) == "the assignment must cover exactly the scored (active) units"
    with pytest.raises(ValueError) as err:
        cb.combine_no_partition(s, [])
    assert str(err.value) == "combine_no_partition needs at least one criterion"


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


def test_softmax_computes_in_float64_for_float32_logits():
    logits = {A: np.float32(0.1), B: np.float32(-0.3), C: np.float32(0.7), D: np.float32(0.2)}
    exact = _softmax({u: float(v) for u, v in logits.items()})  # float32 -> float64 is exact
    p = cb.softmax(logits)
    assert all(type(v) is float for v in p.values())
    assert p == pytest.approx(exact, rel=1e-13, abs=0)


def test_zscore_values_median_in_float64_for_float32_scores():
    # even count: the median averages the middle two; in float32 (0.2f + 0.4f) / 2 loses ~4e-9
    f32 = {A: np.float32(0.1), B: np.float32(0.2), C: np.float32(0.4), D: np.float32(0.7)}
    s = {"h": scores_from_oriented("h", {A: 0.0, B: 1.0, C: 2.0, D: 3.0})}
    s["h"].oriented = dict(f32)
    v = {u: float(x) for u, x in f32.items()}  # exact widening
    med = (v[B] + v[C]) / 2
    devs = sorted(abs(x - med) for x in v.values())
    mad = (devs[1] + devs[2]) / 2
    assert cb.zscore_values(s, "h") == pytest.approx({u: (x - med) / mad for u, x in v.items()}, rel=1e-12, abs=0)


def test_combine_on_no_units_is_empty():
    s = snap(**FIX)
    out = cb.combine_paper(s, {})
    assert out.p == {} and out.logit == {} and out.rho == {} and out.criteria == {}
    ref = cb.combine_reference(s, {}, 2)
    assert ref.p == {} and ref.logit == {}


def test_combine_no_partition_and_reference_leave_k_rho_theta_empty():
    s = snap(**FIX)
    for out in (cb.combine_no_partition(s, ["g", "w"]),
                cb.combine_reference(s, {A: ["w"], B: ["g"], C: ["w", "g"], D: ["g"], E: ["w"]}, 2)):
        assert out.k == {} and out.rho == {} and out.theta == {}
        js = out.to_json()
        assert js["k"] == {} and js["rho"] == {} and js["theta"] == {}


def test_combine_reference_total_below_one_is_still_normalised():
    # 8 units, k = 1, one criterion: total = Σ 5·sigmoid(−r)·softmax(Θ̃) ≈ 0.4 < 1, p = logit / total
    vals = {(i, "lora" if i % 3 else "adapter"): float(v) for i, v in enumerate((3.0, 0.0, 7.0, 1.0, 5.0, 2.0, 9.0, 4.0))}
    s = snap(w=vals)
    n = len(vals)
    soft = _softmax({u: _theta(vals, u) for u in vals})
    logit = {u: 5 / (1 + math.exp(-(0 - n * (1 - _rho(vals, u))))) * soft[u] for u in vals}
    total = sum(logit.values())
    assert total < 1
    out = cb.combine_reference(s, {u: ["w"] for u in vals}, 1)
    assert out.logit == pytest.approx(logit) and out.p == pytest.approx({u: v / total for u, v in logit.items()})
    assert max(out.p, key=out.p.get) == (6, "adapter")


def test_combine_reference_cover_message():
    with pytest.raises(ValueError) as err:
        cb.combine_reference(snap(**FIX), {A: ["w"]}, 1)
    assert str(err.value) == "unit_criteria must cover exactly the scored (active) units"


def test_rank_and_zscore_cover_message_and_empty_fields():
    s = snap(**FIX)
    for fn in (cb.combine_rank, cb.combine_zscore):
        with pytest.raises(ValueError) as err:
            fn(s, {A: ["w"], B: ["g"]})
        assert str(err.value) == "unit_criteria must cover exactly the scored (active) units"
    uc = {A: ["g"], B: ["g", "w"], C: ["w"], D: ["g"], E: ["w"]}
    for fn in (cb.combine_rank, cb.combine_zscore):
        out = fn(s, uc)
        assert out.criteria == {A: ["g"], B: ["g", "w"], C: ["w"], D: ["g"], E: ["w"]}
        assert out.k == {} and out.theta == {} and out.to_json()["k"] == {}
        if fn is cb.combine_zscore:
            assert out.rho == {}


def test_shifted_share_when_the_spread_sums_below_one():
    # shifted 0, 0.25, 0.5: total 0.75 (< 1, still > 0): shares 0, 1/3, 2/3, not uniform
    assert cb._shifted_share({A: -0.5, B: -0.25, C: 0.0}) == pytest.approx({A: 0.0, B: 1 / 3, C: 2 / 3})
    assert cb._shifted_share({A: 2.0, B: 2.0}) == {A: 0.5, B: 0.5}
    z = cb.combine_zscore(snap(h={A: 0.0, B: 0.1, C: 0.3, D: 0.4}), {u: ["h"] for u in (A, B, C, D)})
    # median 0.2, MAD 0.15: z = -4/3, -2/3, 2/3, 4/3 -> shifted 0, 2/3, 2, 8/3 (total 16/3)
    assert z.p == pytest.approx({A: 0.0, B: 1 / 8, C: 3 / 8, D: 1 / 2})


def test_min_max_range_of_exactly_1e8_is_degenerate():
    # 1e-8 − 0.0 is exactly DEGENERATE_RANGE (1.0 + 1e-8 − 1.0 is not): the edge itself is degenerate
    assert min_max({A: 0.0, B: 1e-8}) == ({A: 0.5, B: 0.5}, True)
    assert min_max({C: -1e-8, A: 0.0, B: -5e-9}) == ({C: 0.5, A: 0.5, B: 0.5}, True)
    theta, deg = min_max({A: 0.0, B: 2e-8, C: 1.5e-8})
    assert not deg and theta == pytest.approx({A: 0.0, B: 1.0, C: 0.75})


def test_sigmoid_is_exact_on_both_sides_and_never_overflows():
    sigmoid = cb.sigmoid
    assert sigmoid(0.0) == 0.5
    # Eq. (1) takes sigmoid of a percentile in (0, 1]: there it must be bit for bit the textbook form, so that
    # found configurations stay what they were (e^x / (1 + e^x) differs in the last bit for 0.007, 0.012, ...).
    for x in (0.007, 0.012, 0.25, 0.5, 1.0):
        assert sigmoid(x) == 1.0 / (1.0 + math.exp(-x))
    assert sigmoid(2.0) == pytest.approx(1 / (1 + math.exp(-2.0)), abs=1e-15)
    assert sigmoid(-2.0) == pytest.approx(1 / (1 + math.exp(2.0)), abs=1e-15)
    assert sigmoid(-3.0) + sigmoid(3.0) == pytest.approx(1.0, abs=1e-15)
    assert sigmoid(-800.0) == 0.0 and sigmoid(800.0) == 1.0  # math.exp(800) would raise OverflowError
    assert 0.0 < sigmoid(-700.0) < 1e-300
    # The reference combination with 711 units and k = 1: rank 710 gives sigmoid(-710), which raised before.
    vals = {(i, "lora"): float(i % 97) + i / 1000 for i in range(711)}
    out = cb.combine_reference(snap(w=vals), {u: ["w"] for u in vals}, 1)
    assert len(out.p) == 711 and sum(out.p.values()) == pytest.approx(1.0)
    assert max(out.p, key=out.p.get) == max(vals, key=vals.get)  # the most prunable unit leads
