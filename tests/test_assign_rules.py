"""Issue 15, Deliver 2: the named alternatives behind `strategy.combine` and `search.warmup.assign`,
checked against hand computations (expected p order, expected assignment)."""
from __future__ import annotations

import json

import pytest

from prunepeft.errors import UserError
from prunepeft.pruning.assign_rules import ASSIGN_RULES, importance_percentiles
from prunepeft.pruning.combine import COMBINATIONS, combine_paper, combine_rank, combine_zscore
from prunepeft.pruning.partitions import Partition, key_str
from prunepeft.pruning.scoring import scores_from_oriented
from prunepeft.pruning.strategies import COMBINE_MODES, combine_round, make_strategy
from prunepeft.pruning.warmup import assign, recompute_assignment, summarise_warmup, tendencies

U0, U1, U2, U3 = (0, "lora"), (1, "lora"), (2, "adapter"), (3, "adapter")


def order(p):
    """Units by descending p; equal p share a frozenset."""
    levels = sorted(set(p.values()), reverse=True)
    return [frozenset(u for u in p if p[u] == v) for v in levels]


@pytest.fixture
def mixed():
    # A: one outlier squeezes the others' Θ̃: Θ̃_A = (1, .02, .01, 0), ρ_A = (1, .75, .5, .25)
    # B: Θ̃_B = (0, .5, .25, 1), ρ_B = (.25, .75, .5, 1)
    snap = {"weight": scores_from_oriented("weight", {U0: 100.0, U1: 2.0, U2: 1.0, U3: 0.0}),
            "taylor": scores_from_oriented("taylor", {U0: 0.0, U1: 2.0, U2: 1.0, U3: 4.0})}
    return snap, {U0: "weight", U1: "weight", U2: "taylor", U3: "taylor"}


def test_combinations_by_hand_disagree_where_scales_mix(mixed):
    snap, per_unit = mixed
    unit_criteria = {u: [c] for u, c in per_unit.items()}
    # paper: σ(1)·1, σ(.75)·.02 = .0136, σ(.5)·.25 = .156, σ(1)·1  ->  U0 = U3 > U2 > U1
    assert order(combine_paper(snap, per_unit).p) == [{U0, U3}, {U2}, {U1}]
    # rank: ρ under S_i: 1, .75, .5, 1  ->  U0 = U3 > U1 > U2 (U1 and U2 swap against paper)
    rank = combine_rank(snap, unit_criteria)
    assert order(rank.p) == [{U0, U3}, {U1}, {U2}]
    assert rank.p[U1] == pytest.approx(0.75 / 3.25) and sum(rank.p.values()) == pytest.approx(1.0)
    # zscore: A median 1.5, MAD 1 -> U0 98.5, U1 .5; B median 1.5, MAD 1 -> U2 -.5, U3 2.5
    z = combine_zscore(snap, unit_criteria)
    assert z.logit == pytest.approx({U0: 98.5, U1: 0.5, U2: -0.5, U3: 2.5})
    assert order(z.p) == [{U0}, {U3}, {U1}, {U2}]
    assert z.p[U3] == pytest.approx(3.0 / 103.0)


def test_zscore_of_a_degenerate_criterion_is_zero_and_mad_zero_divides_by_one():
    flat = scores_from_oriented("weight", {U0: 1.0, U1: 1.0 + 1e-10, U2: 1.0, U3: 1.0})
    tied = scores_from_oriented("taylor", {U0: 0.0, U1: 0.0, U2: 0.0, U3: 3.0})  # median 0, MAD 0
    snap = {"weight": flat, "taylor": tied}
    assert combine_zscore(snap, {u: ["weight"] for u in flat.oriented}).logit == {u: 0.0 for u in flat.oriented}
    assert combine_zscore(snap, {u: ["taylor"] for u in flat.oriented}).logit[U3] == 3.0


def test_strategy_combine_registry_and_unknown_value(mixed):
    snap, _ = mixed
    assert COMBINE_MODES == ("paper", "reference", "rank", "zscore") == tuple(COMBINATIONS)
    with pytest.raises(UserError, match="unknown strategy.combine 'ranks'; valid choices: paper, rank, reference, zscore"):
        make_strategy("hybrid", None, ["weight", "taylor"], "ranks")
    part = Partition(4)
    s_h = {part.key(U0): "weight", part.key(U1): "weight", part.key(U2): "taylor", part.key(U3): "taylor"}
    for mode in COMBINE_MODES:
        combined = combine_round(make_strategy("hybrid", None, ["weight", "taylor"], mode), snap, part, s_h, 2)
        assert combined.method == mode
    single = combine_round(make_strategy("single", "weight", [], "rank"), snap, part, None, 2)
    assert order(single.p) == [{U0}, {U1}, {U2}, {U3}]
    mixed_rank = combine_round(make_strategy("hybrid_no_partition", None, ["weight", "taylor"], "rank"), snap, part, None, 2)
    assert mixed_rank.logit[U1] == pytest.approx(0.75)  # mean of ρ_A .75 and ρ_B .75


# ---------------------------------------------------------------- assignment rules
PART4 = Partition(4)  # one layer per block; one LoRA unit per key below
L = [(layer, "lora") for layer in range(4)]


def snap4(**by_criterion):
    return {c: scores_from_oriented(c, dict(zip(L, values))) for c, values in by_criterion.items()}


@pytest.fixture
def warm():
    # weight and zeros: ρ = (.25, .5, .75, 1); taylor: ρ = (1, .75, .5, .25)
    return [snap4(weight=[0, 1, 2, 3], zeros=[0, 1, 2, 3], taylor=[3, 2, 1, 0])]


def keys(assignment):
    return [assignment[PART4.key(u)] for u in L]


def test_tendency_is_todays_argmax_tau(warm):
    result = summarise_warmup(warm, PART4, 1, 0)
    assert keys(result.assignment) == ["taylor", "taylor", "weight", "weight"]
    assert result.assignment == assign(tendencies(warm, PART4)) and result.scores is None
    data = result.to_json()
    assert data["assign"] == "tendency" and "assign_scores" not in data
    assert recompute_assignment(json.loads(json.dumps(data))) == result.assignment
    assert result.margins()["b0:lora"] == pytest.approx(1.0 - 0.25)


def test_consensus_by_hand(warm):
    # mean ρ over the three criteria: (.5, .5833, .6667, .75); weight and zeros sit .25 / .0833 /
    # .0833 / .25 from it, taylor .5 / .1667 / .1667 / .5: weight everywhere (ties with zeros -> registry order)
    result = summarise_warmup(warm, PART4, 1, 0, assign_rule="consensus")
    assert keys(result.assignment) == ["weight"] * 4
    assert result.scores["taylor"][PART4.key(L[0])] == pytest.approx(-0.5)
    assert result.scores["weight"][PART4.key(L[1])] == pytest.approx(-1 / 12)
    assert result.margins()["b0:lora"] == pytest.approx(0.0)  # zeros ties weight
    data = json.loads(json.dumps(result.to_json()))
    assert data["assign"] == "consensus" and recompute_assignment(data) == result.assignment


def test_agreement_by_hand(warm):
    # importance (1, 3, 2, 4): ρ_imp of −importance = (1, .5, .75, .25)
    importance = dict(zip(L, [1.0, 3.0, 2.0, 4.0]))
    assert importance_percentiles(importance) == dict(zip(L, [1.0, 0.5, 0.75, 0.25]))
    # |ρ − ρ_imp|: weight (.75, 0, 0, .75), taylor (0, .25, .25, 0)
    result = summarise_warmup(warm, PART4, 1, 0, assign_rule="agreement", importances=[importance])
    assert keys(result.assignment) == ["taylor", "weight", "weight", "taylor"]
    assert result.margins()["b0:lora"] == pytest.approx(0.75)
    data = json.loads(json.dumps(result.to_json()))
    assert data["agreement"]["importance"] == [{"0:lora": 1.0, "1:lora": 3.0, "2:lora": 2.0, "3:lora": 4.0}]
    assert recompute_assignment(data) == result.assignment
    with pytest.raises(ValueError, match="one importance map per warm-up snapshot"):
        summarise_warmup(warm, PART4, 1, 0, assign_rule="agreement")


def test_always_degenerate_criterion_is_not_a_candidate_for_any_rule(warm):
    flat = [dict(s, threshold=scores_from_oriented("threshold", {u: 0.3 for u in L})) for s in warm]
    imp = [dict(zip(L, [0.5, 0.5, 0.5, 0.5]))]  # ties: ρ_imp = .625 = threshold's tied ρ
    for rule in ASSIGN_RULES:
        result = summarise_warmup(flat, PART4, 1, 0, assign_rule=rule, importances=imp)
        assert "threshold" not in result.assignment.values(), rule
        assert recompute_assignment(json.loads(json.dumps(result.to_json()))) == result.assignment


def test_unknown_assign_rule_names_the_choices():
    with pytest.raises(UserError, match="unknown search.warmup.assign 'argmax'; valid choices: agreement, consensus, tendency"):
        make_strategy("hybrid", None, ["weight"], "paper", "argmax")


def test_agreement_probe_rows_are_disjoint_from_the_diagnostics_probe():
    from datasets import Dataset
    from omegaconf import OmegaConf

    from prunepeft.data.subsets import stratified_subset
    from prunepeft.pruning.assign_rules import agreement_rows
    from prunepeft.pruning.masked import PROBE_SEED_OFFSET

    pool = Dataset.from_dict({"row": list(range(200)), "label": [i % 2 for i in range(200)]})
    cfg = OmegaConf.create({"seed": 3, "task": {"num_labels": 2, "label_field": "label"},
                            "search": {"warmup": {"agreement_probe": 100}, "diagnostics": {"probe": 100}}})
    diag = set(stratified_subset(pool, 100, 3 + PROBE_SEED_OFFSET, "label", False)["row"])
    rows = agreement_rows(_probes(cfg), pool)["row"]
    assert len(rows) == 100 and not diag & set(rows)
    cfg.search.warmup.agreement_probe = 101
    with pytest.raises(UserError, match="needs 101 training rows"):
        agreement_rows(_probes(cfg), pool)


@pytest.mark.parametrize("pool_rows, expected", [(590, 490), (1000, 512), (227, None)])
def test_agreement_probe_null_takes_the_rows_left_up_to_512_and_needs_128(pool_rows, expected):
    """`scale=cpu` on RTE: a 2k subset of 2,490 rows leaves 490, fewer than 512 (the diagnostics
    probe's 100 rows come out first)."""
    from datasets import Dataset
    from omegaconf import OmegaConf

    from prunepeft.pruning.assign_rules import agreement_rows

    pool = Dataset.from_dict({"row": list(range(pool_rows)), "label": [i % 2 for i in range(pool_rows)]})
    cfg = OmegaConf.create({"seed": 3, "task": {"num_labels": 2, "label_field": "label"},
                            "search": {"warmup": {"agreement_probe": None}, "diagnostics": {"probe": 100}}})
    if expected is None:
        with pytest.raises(UserError, match=r"needs 128 training rows .* only 127 are left.*null asks for 128 to 512"):
            agreement_rows(_probes(cfg), pool)
    else:
        assert len(agreement_rows(_probes(cfg), pool)) == expected


def test_agreement_search_end_to_end(tmp_path, glue_dir):
    """A tiny search under assign=agreement: warmup.json holds the rule, its scores, one importance map
    per snapshot, and S_H re-derives from the file."""
    from conftest import compose_config, tiny_overrides_for

    from prunepeft.commands import search as search_cmd

    overrides = tiny_overrides_for(glue_dir) + [
        "task=sst2", "data.train_subset=96", "search.warmup.subset=32", "search.warmup.epochs=1",
        "search.warmup.snapshots=2", "search.retrain_epochs=0", "budget.params=2000", "search.k=2",
        "search.reinit=keep", "search.warmup.assign=agreement", "search.warmup.agreement_probe=32",
        "strategy.combine=rank"]
    search_cmd.run(compose_config("search", overrides), tmp_path)
    warm = json.loads((tmp_path / "warmup.json").read_text())
    assert warm["assign"] == "agreement" and len(warm["agreement"]["importance"]) == 2
    assert warm["agreement"]["rows"] == 32 and warm["agreement"]["wall_s"] >= 0
    assert {key_str(k): c for k, c in recompute_assignment(warm).items()} == warm["assignment"]
    rounds = [json.loads(line) for line in (tmp_path / "rounds.jsonl").read_text().splitlines()]
    assert rounds and rounds[0]["combined"]["method"] == "rank"


def test_rule_alternatives_are_each_rules_own_assignment_and_survive_the_file(warm):
    """With `search.diagnostics.grid` the warm-up also derives S under every other rule from the same
    snapshots; each equals what that rule alone assigns, and warmup.json carries them to a resume."""
    from prunepeft.pruning.warmup import WarmupSnapshots, load_assignment

    importance = [dict(zip(L, [1.0, 3.0, 2.0, 4.0]))]
    snaps = WarmupSnapshots(warm)
    snaps.assign, snaps.importances, snaps.rule_alternatives = "agreement", importance, True
    result = summarise_warmup(snaps, PART4, 1, 0)
    alternatives = result.assignment.alternatives
    assert list(alternatives) == ["tendency", "agreement", "consensus"]  # registry order of ASSIGN_RULES
    for rule in ASSIGN_RULES:
        alone = summarise_warmup(warm, PART4, 1, 0, assign_rule=rule, importances=importance).assignment
        assert alternatives[rule] == alone, rule
    assert keys(alternatives["tendency"]) == ["taylor", "taylor", "weight", "weight"]
    assert keys(alternatives["agreement"]) == ["taylor", "weight", "weight", "taylor"] == keys(result.assignment)
    loaded = load_assignment(json.loads(json.dumps(result.to_json())))
    assert loaded == result.assignment and loaded.alternatives == alternatives
    # Off by default: warmup.json is unchanged (no "rule_assignments"), agreement needs importances.
    plain = summarise_warmup(warm, PART4, 1, 0)
    assert "rule_assignments" not in plain.to_json() and plain.assignment.alternatives == {}
    snaps = WarmupSnapshots(warm)
    snaps.rule_alternatives = True
    assert list(summarise_warmup(snaps, PART4, 1, 0).assignment.alternatives) == ["tendency", "consensus"]


def _probes(cfg):
    """The probe settings the search types once (config.typed.RunSettings.probes) of a small config."""
    from prunepeft.config.typed import ProbeSettings

    asked = cfg.search.warmup.get("agreement_probe")
    return ProbeSettings(task=cfg.task, seed=int(cfg.seed), diagnostics_rows=int(cfg.search.diagnostics.probe),
                         agreement_rows=None if asked is None else int(asked))
