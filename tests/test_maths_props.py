"""Property-based tests (hypothesis) of the method's invariants (issue 25, Deliver 4).

- a removal never lands above B when B is reachable, and is the SHORTEST prefix of the order;
- removal sets are distinct units of the right type ((layer, type) keys of p);
- percentiles ρ are in (0, 1], average ties, and sum to (n + 1) / 2;
- the tendency's mean over all units is the mean percentile (n + 1) / 2n, whatever the partition;
- exact ties in p are ordered by the seed alone (same seed, same order);
- the seed bootstrap's 95 % interval covers the true mean of known data about 95 % of the time.
"""
from __future__ import annotations

import math
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from prunepeft.pruning import assign_rules as ar
from prunepeft.pruning import combine as cb
from prunepeft.pruning import selection as sel
from prunepeft.pruning.partitions import Partition
from prunepeft.pruning.scoring import min_max, percentile_ranks, scores_from_oriented

# Fewer examples under `make mutation` (mutmut sets MUTANT_UNDER_TEST): each mutant reruns these.
FAST = settings(max_examples=20 if os.environ.get("MUTANT_UNDER_TEST") else 60, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])
TYPES = ("lora", "adapter", "dora")


@st.composite
def units(draw, min_size=1, max_size=12):
    """Distinct (layer, type) units."""
    return draw(st.lists(st.tuples(st.integers(0, 11), st.sampled_from(TYPES)), min_size=min_size,
                         max_size=max_size, unique=True))


@st.composite
def scored(draw, min_size=1):
    """(units, p with deliberate ties, positive parameter counts)."""
    uids = draw(units(min_size=min_size))
    levels = draw(st.lists(st.floats(0, 1, allow_nan=False), min_size=1, max_size=4))
    p = {u: draw(st.sampled_from(levels)) for u in uids}
    counts = {u: draw(st.integers(1, 500)) for u in uids}
    return uids, p, counts


@FAST
@given(scored(), st.integers(0, 3000), st.integers(0, 2**40))
def test_budget_prefix_never_above_b_and_shortest(data, budget, seed):
    uids, p, counts = data
    total = sum(counts.values())
    removed = sel.select_for_budget(p, counts, total, budget, seed)
    order = sel.removal_order(p, seed)
    assert removed == order[:len(removed)]  # a prefix: no higher-p unit skipped
    assert len(set(removed)) == len(removed) and set(removed) <= set(uids)
    left = total - sum(counts[u] for u in removed)
    assert left <= budget or removed == order  # B reached, or nothing left to remove
    if removed:
        assert left + counts[removed[-1]] > budget  # one unit fewer would stay above B: shortest


@FAST
@given(scored(), st.integers(1, 5), st.integers(0, 3000), st.integers(0, 2**40))
def test_round_removal_distinct_typed_and_last_means_within_b(data, k, budget, seed):
    uids, p, counts = data
    total = sum(counts.values())
    removed, last = sel.select_round(p, k, counts, total, budget, seed)
    assert len(set(removed)) == len(removed) and len(removed) <= k
    assert all(isinstance(u, tuple) and isinstance(u[0], int) and u[1] in TYPES for u in removed)
    left = total - sum(counts[u] for u in removed)
    if last:
        assert left <= budget or len(removed) == len(uids)
    else:
        assert len(removed) == min(k, len(uids)) and left > budget


@FAST
@given(scored(min_size=2), st.integers(0, 2**40))
def test_ties_are_broken_by_the_seed_alone(data, seed):
    uids, p, _ = data
    assert sel.removal_order(p, seed) == sel.removal_order(dict(reversed(list(p.items()))), seed)
    flat = {u: 0.25 for u in uids}
    perm = np.random.default_rng(seed).permutation(len(uids))
    assert sel.removal_order(flat, seed) == [sorted(uids)[i] for i in np.argsort(perm)]
    order = sel.removal_order(p, seed)
    assert all(p[a] >= p[b] for a, b in zip(order, order[1:]))


@FAST
@given(st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=30))
def test_percentiles_in_unit_interval_and_sum(values):
    oriented = {(i, "lora"): v for i, v in enumerate(values)}
    n = len(values)
    rho = percentile_ranks(oriented)
    assert all(0 < r <= 1 for r in rho.values())
    assert sum(rho.values()) == pytest.approx((n + 1) / 2)
    for a in oriented:
        for b in oriented:
            if oriented[a] > oriented[b]:
                assert rho[a] > rho[b]
            elif oriented[a] == oriented[b]:
                assert rho[a] == rho[b]
    theta, deg = min_max(oriented)
    assert all(0 <= t <= 1 for t in theta.values())
    if not deg:
        assert min(theta.values()) == 0 and max(theta.values()) == pytest.approx(1)


@FAST
@given(units(min_size=2), st.integers(1, 4), st.integers(0, 2**32 - 1))
def test_tendency_mean_over_units_is_the_mean_percentile(uids, snapshots, seed):
    rng = np.random.default_rng(seed)
    part = Partition(12, (0.3, 0.6))
    snaps = [{"w": scores_from_oriented("w", {u: float(rng.integers(0, 4)) for u in uids})} for _ in range(snapshots)]
    tau = ar.tendency_scores(snaps, part, ["w"], ["w"])["w"]
    sizes = {key: len(g) for key, g in part.group(uids).items()}
    assert set(tau) == set(sizes)
    n = len(uids)
    weighted = sum(tau[k] * sizes[k] for k in tau) / n
    assert weighted == pytest.approx((n + 1) / (2 * n))
    assert all(0 < t <= 1 for t in tau.values())


@FAST
@given(scored(min_size=2))
def test_combinations_are_distributions(data):
    uids, p, _ = data
    rng = np.random.default_rng(len(uids))
    snap = {c: scores_from_oriented(c, {u: float(rng.normal()) for u in uids}) for c in ("w", "g")}
    uc = {u: ["w"] if i % 2 else ["g", "w"] for i, u in enumerate(sorted(uids))}
    for name, fn in cb.COMBINATIONS.items():
        out = fn(snap, uc, 2)
        assert set(out.p) == set(uids) and sum(out.p.values()) == pytest.approx(1.0), name
        assert all(v >= 0 for v in out.p.values()), name
        order = sorted(uids, key=lambda u: out.logit[u])
        assert all(out.p[a] <= out.p[b] + 1e-12 for a, b in zip(order, order[1:])), name  # order-preserving


# ---------------------------------------------------------------------------------- the signal report
signal = pytest.importorskip("prunepeft.analysis.stats")
signal_rows = pytest.importorskip("prunepeft.analysis.signal")


def test_bootstrap_ci_by_hand_and_coverage_on_known_data():
    assert signal.bootstrap_ci([1.0]) is None and signal.bootstrap_ci([None, 2.0]) is None
    mean, low, high, n = signal.bootstrap_ci([1.0, 2.0, 6.0, None], resamples=2000, seed=3)
    assert (mean, n) == (3.0, 3) and 1.0 <= low < mean < high <= 6.0
    assert signal.bootstrap_ci([1.0, 2.0, 6.0], resamples=2000, seed=3) == (mean, low, high, n)  # seeded
    rng = np.random.default_rng(2025)
    trials, covered = 120, 0
    for i in range(trials):
        sample = list(rng.normal(0.5, 1.0, size=25))
        _, lo, hi, _ = signal.bootstrap_ci(sample, resamples=400, seed=i)
        covered += lo <= 0.5 <= hi
    assert 0.85 <= covered / trials <= 0.995  # nominal 95 % (the percentile interval runs a bit short)


def test_mde_mean_ci_fisher_by_hand():
    assert signal.mde(1.96) == pytest.approx(2.8) and signal.mde(0.0) == 0.0
    from scipy.stats import t

    vals = [1.0, 4.0, 2.0, 9.0]
    m, sd = 4.0, math.sqrt(((1 - 4) ** 2 + 0 + (2 - 4) ** 2 + 25) / 3)
    assert signal.mean_ci(vals) == pytest.approx((m, t.ppf(0.975, 3) * sd / 2, 4))
    assert signal.mean_sd([*vals, None]) == pytest.approx((m, sd, 4))
    assert signal.mean_ci([3.0]) is None and signal.mean_sd([None, 1.0]) is None
    z = [math.atanh(0.2), math.atanh(0.5), math.atanh(-0.1)]
    zm = sum(z) / 3
    half = t.ppf(0.975, 2) * float(np.std(z, ddof=1)) / math.sqrt(3)
    assert signal.fisher_mean([0.2, 0.5, None, -0.1]) == pytest.approx((math.tanh(zm), math.tanh(zm - half),
                                                                         math.tanh(zm + half)))
    assert signal.fisher_mean([1.0, 1.0])[0] == pytest.approx(0.999999)  # clipped, finite
    assert signal_rows.arm_of("settings/keep-s101") == ("settings/keep", 101) and signal_rows.arm_of("x-sy") == ("x-sy", None)
