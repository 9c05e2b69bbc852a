"""By-hand checks of the combinations of criteria (issue 25, Deliver 4).

Covers prunepeft/pruning/combine.py: the sigmoid and softmax, Eq. (1) (`paper`) with a mixed
assignment, the no-partition mean, the `reference`, `rank` and `zscore` combinations (median/MAD,
the shifted share) and their errors. Every expected number here is worked out in the test from
docs/method.md's formulas, never by calling the function under test: several criteria, ties,
unequal spread, unequal ρ, float32 inputs. These are among the tests `make mutation` runs (seconds,
no model); the last sections kill named survivors of its runs.
"""
from __future__ import annotations

import math
import statistics

import numpy as np
import pytest
from maths_byhand_helpers import A, B, C, D, E, _rho, snap

from prunepeft.errors import UserError
from prunepeft.pruning import combine as cb
from prunepeft.pruning.scoring import scores_from_oriented


# ---------------------------------------------------------------------------------- combine
FIX = dict(w={A: 4.0, B: 1.0, C: 3.0, D: 1.0, E: 0.0},  # a tie (B, D), unequal spread
           g={A: 0.0, B: 10.0, C: 2.0, D: 7.0, E: 1.0})


def _theta(values, u):
    lo, hi = min(values.values()), max(values.values())
    return (values[u] - lo) / (hi - lo)


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


# ---------------------------------------------------------------------------------- mutation survivors
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
