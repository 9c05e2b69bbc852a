"""Top-k with seeded tie-breaks; the budget stop never ends above B and never skips a higher p."""
from __future__ import annotations

import random

import pytest

from prunepeft.pruning.selection import removal_order, select_for_budget, select_round, select_top_k

U = [(i, t) for i in range(4) for t in ("lora", "adapter")]


def test_top_k_respects_k_and_order():
    p = {u: float(i) for i, u in enumerate(U)}  # the last unit has the highest p
    assert select_top_k(p, 2, seed=0) == [U[-1], U[-2]]
    assert select_top_k(p, 0, seed=0) == []
    assert select_top_k(p, 100, seed=0) == list(reversed(U))
    with pytest.raises(ValueError):
        select_top_k(p, -1, seed=0)


def test_ties_broken_by_seed_deterministically():
    p = {u: 0.5 for u in U}
    p[U[3]] = 0.9
    orders = {tuple(removal_order(p, seed)) for seed in range(20)}
    assert all(o[0] == U[3] for o in orders)  # a strictly higher p always goes first
    assert len(orders) > 1  # ties resolved differently for different seeds ...
    reordered = dict(reversed(list(p.items())))
    assert removal_order(p, 5) == removal_order(reordered, 5)  # ... but not by dict order
    assert select_top_k(p, 3, seed=5) == removal_order(p, 5)[:3]


def test_budget_by_hand():
    p = {U[0]: 0.4, U[1]: 0.3, U[2]: 0.2, U[3]: 0.1}
    counts = {U[0]: 100, U[1]: 10, U[2]: 50, U[3]: 5}
    # total 165, B = 60: drop U0 (-> 65 > 60), then U1 (-> 55 <= 60) and stop
    assert select_for_budget(p, counts, 165, 60, seed=0) == [U[0], U[1]]
    assert select_for_budget(p, counts, 165, 100, seed=0) == [U[0]]
    assert select_for_budget(p, counts, 165, 165, seed=0) == []
    assert select_for_budget(p, counts, 165, 0, seed=0) == [U[0], U[1], U[2], U[3]]
    with pytest.raises(ValueError, match="parameter count"):
        select_for_budget(p, {U[0]: 1}, 165, 10, seed=0)


def test_budget_never_skips_a_higher_p_unit():
    p = {U[0]: 0.4, U[1]: 0.3, U[2]: 0.2, U[3]: 0.1}
    counts = {U[0]: 5, U[1]: 100, U[2]: 50, U[3]: 10}
    # Removing U1 alone would reach B = 100 (165 -> 65), but U0 has a higher p: it goes first.
    assert select_for_budget(p, counts, 165, 100, seed=0) == [U[0], U[1]]


@pytest.mark.parametrize("seed", range(25))
def test_budget_property(seed):
    rng = random.Random(seed)
    units = U[: rng.randint(1, len(U))]
    p = {u: rng.choice([0.1, 0.2, 0.3, rng.random()]) for u in units}
    counts = {u: rng.randint(1, 100) for u in units}
    total = sum(counts.values())
    budget = rng.randint(0, total + 10)
    removed = select_for_budget(p, counts, total, budget, seed)
    order = removal_order(p, seed)
    assert removed == order[: len(removed)]  # a prefix: never skips a higher-p unit
    left = total - sum(counts[u] for u in removed)
    assert left <= budget  # never ends above B
    if removed:  # the shortest such prefix
        assert left + counts[removed[-1]] > budget


def test_select_round_top_k_then_budget_prefix():
    p = {U[0]: 0.4, U[1]: 0.3, U[2]: 0.2, U[3]: 0.1}
    counts = {u: 10 for u in p}
    assert select_round(p, 2, counts, 40, 5, seed=0) == ([U[0], U[1]], False)  # 20 left > 5
    assert select_round(p, 2, counts, 40, 25, seed=0) == ([U[0], U[1]], True)  # exactly k reach it
    assert select_round(p, 2, counts, 40, 35, seed=0) == ([U[0]], True)  # fewer than k suffice
    assert select_round(p, 2, counts, 40, 40, seed=0) == ([], True)


def test_select_round_top_k_landing_exactly_on_the_budget_is_the_last_round():
    # mutation audit M21: removing the top-k leaves exactly B -> within the budget, so `last` is True
    p = {U[0]: 0.4, U[1]: 0.3, U[2]: 0.2, U[3]: 0.1}
    assert select_round(p, 2, {u: 10 for u in p}, 40, 20, seed=0) == ([U[0], U[1]], True)
