"""By-hand checks of what a round removes under the budget (issue 25, Deliver 4).

Covers prunepeft/pruning/selection.py (the removal order and its seeded ties, top-k, the shortest
prefix for a budget, a round's selection), the rank stage of prunepeft/arms/rank_stage.py (the
module stop, the selection that stays above the budget, rank scores of non-square matrices),
prunepeft/pruning/budget.py (the budget in parameters, the smallest unit) and the exact messages of
budget.py and of combine.py's unknown combination. Every expected number here is worked out in the
test from docs/method.md's formulas, never by calling the function under test: ties, non-square
matrices, unequal unit sizes. These are among the tests `make mutation` runs (seconds, no model);
the last section kills survivors of its runs.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from maths_byhand_helpers import A, B, C, D, E

from prunepeft.arms.rank_stage import module_stop, select_round_for_ranks, step_rank_scores
from prunepeft.errors import UserError
from prunepeft.pruning import combine as cb
from prunepeft.pruning import selection as sel
from prunepeft.pruning.budget import budget_params, check_budget


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

