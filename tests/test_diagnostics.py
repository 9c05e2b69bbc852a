"""Search signal: weights-only criteria, type fairness over the registry, the warm-up's init, and the
diagnostics instrument (ground-truth importance, correlations, decision percentile, no side effects)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import binomtest

from prunepeft.peft.supernet import Supernet
from prunepeft.pruning.collector import StatisticsCollector
from prunepeft.pruning.criteria import CRITERIA, CriterionContext, needs_of
from prunepeft.pruning.masked import MaskedProbe
from prunepeft.analysis.diagnostics import (
    Probe,
    decision_percentile,
    prunability_correlation,
    random_sets_like,
    spearman,
)
from prunepeft.pruning.rounds import fill_budget
from prunepeft.pruning.scoring import remove_type_offset, score_snapshot
from prunepeft.pruning.selection import select_top_k
from prunepeft.seed import generator
from test_supernet import SIZES, batch, tiny

ALL_CRITERIA = tuple(CRITERIA)


def supernet(seed: int = 0, scheme: str = "paper") -> Supernet:
    model, fam = tiny("bert", seed=seed)
    net = Supernet.build(model, fam, ["lora", "adapter"], SIZES, 32)
    net.reinit(net.unit_ids(), scheme, generator(seed))
    return net


def collect(net: Supernet, criteria=ALL_CRITERIA, seed: int = 0, lr: float = 0.0):
    """Statistics of one forward/backward pass over a random batch (one optimizer step of `lr`)."""
    needs = needs_of(criteria)
    # masked_loss: the rises on a held-aside batch (another seed's), measured at snapshot()
    aside = [{**batch(seed + 1000), "labels": torch.tensor([1, 0, 1])}]
    probe = MaskedProbe(aside, 2, "fp32", seed) if "masked_loss" in needs else None
    col = StatisticsCollector(net, needs, probe=probe)
    inputs = {**batch(seed), "labels": torch.tensor([0, 1, 1])}
    net.model.train()
    col.on_train_batch_start(inputs)
    net.model(**inputs).loss.backward()
    col.on_before_optimizer_step(1)
    with torch.no_grad():
        for p in net.peft_parameters():
            if p.grad is not None:
                p.sub_(lr * p.grad)
    stats = col.snapshot()
    col.close()
    return stats


# ---------------------------------------------------------------- weights only, types fair
def test_biases_do_not_change_any_criterion():
    """A unit with and without its (zero-initialised) biases scores identically under every criterion."""
    net = supernet(1)
    ctx = CriterionContext(seed=1)
    before = score_snapshot(collect(net, seed=1), ALL_CRITERIA, ctx)
    with torch.no_grad():
        for uid in net.unit_ids():
            for name, p in net.unit_parameters(uid).items():
                if name.endswith("bias"):
                    p.fill_(0.0)  # already zero after init: now move them far from zero
                    p.add_(3.0 if "down" in name else 0.0)
    # the down-bias changes the forward pass, so compare weight-only criteria on identical weights
    after = score_snapshot(collect(net, seed=1), ("weight", "zeros", "threshold"), ctx)
    for name in ("weight", "zeros", "threshold"):
        assert after[name].raw == pytest.approx(before[name].raw, abs=0), name
    assert all(p.dim() == 2 for uid in net.unit_ids() for p in net.criterion_parameters(uid))


@pytest.mark.parametrize("name", ALL_CRITERIA)
def test_registry_criteria_prefer_no_unit_type_on_untrained_supernets(name, compose_cfg):
    """P(adapter more prunable than the LoRA unit of its layer) lies in the binomial 95 % band.

    On untrained tiny supernets (paper init) a criterion either prefers neither type as it is, or
    it is listed in the shipped `search.type_norm_criteria` and prefers neither type once
    `search.type_norm=zscore` removes the offset. Every criterion added to the registry gets this.
    """
    cfg = compose_cfg("search", ["model=tiny_bert"])
    listed = tuple(cfg.search.type_norm_criteria)
    pvalue = {}
    for norm in ("none", "zscore"):
        wins, n = 0.0, 0
        for seed in range(12):
            net = supernet(seed)
            ctx = CriterionContext(seed=seed, type_norm=norm, type_norm_criteria=listed)
            oriented = score_snapshot(collect(net, (name,), seed), (name,), ctx)[name].oriented
            for layer in range(net.num_layers):
                a, lo = oriented[(layer, "adapter")], oriented[(layer, "lora")]
                wins += 1.0 if a > lo else 0.5 if a == lo else 0.0
                n += 1
        pvalue[norm] = binomtest(round(wins), n, 0.5).pvalue
    if name in listed:
        assert pvalue["zscore"] > 0.05, (name, pvalue)
    else:
        assert pvalue["none"] > 0.05, (f"{name} prefers a unit type: add it to search.type_norm_criteria", pvalue)


def test_remove_type_offset_standardises_within_each_type():
    oriented = {(0, "lora"): 1.0, (1, "lora"): 3.0, (0, "adapter"): 100.0, (1, "adapter"): 300.0, (2, "adapter"): 200.0}
    z = remove_type_offset(oriented)
    assert z[(0, "lora")] == pytest.approx(-1.0) and z[(1, "lora")] == pytest.approx(1.0)
    assert z[(2, "adapter")] == pytest.approx(0.0) and z[(1, "adapter")] == pytest.approx(math.sqrt(1.5))
    assert remove_type_offset({(0, "lora"): 2.0}) == {(0, "lora"): 0.0}


# ---------------------------------------------------------------- warm-up init
@pytest.mark.parametrize("reinit,expected", [("paper", "paper"), ("standard", "standard"), ("keep", "paper")])
def test_warmup_starts_from_the_rounds_initialisation(reinit, expected, compose_cfg, glue_dir):
    """The warm-up's step-0 supernet equals the chosen initialisation drawn with the run's seed."""
    from conftest import tiny_overrides_for

    from prunepeft.pruning.phases import run_warmup, warmup_init
    from prunepeft.pruning.search import build_supernet, validate
    from prunepeft.train.callbacks import Callback

    cfg = compose_cfg("search", tiny_overrides_for(glue_dir) + [f"search.reinit={reinit}", "search.warmup.epochs=1",
                                                                 "search.warmup.snapshots=1"])
    setup = validate(cfg)
    assert warmup_init(setup.search) == expected
    net, tokenizer, data = build_supernet(setup)
    reference, _, _ = build_supernet(setup)
    reference.reinit(reference.unit_ids(), expected, generator(int(cfg.seed)))
    seen: dict = {}

    class FirstStep(Callback):
        def on_train_batch_start(self, batch):
            seen.setdefault("units", net.state_dict_units())

    import prunepeft.pruning.phases as phases

    original = phases.train_supernet
    phases.train_supernet = lambda *a, callbacks=(), **kw: original(*a, callbacks=[*callbacks, FirstStep()], **kw)
    try:
        run_warmup(net, tokenizer, data.train, setup, criteria=("weight",), seed=int(cfg.seed))
    finally:
        phases.train_supernet = original
    expected_units = reference.state_dict_units()
    assert set(seen["units"]) == set(expected_units)
    for key, value in expected_units.items():
        assert torch.equal(seen["units"][key], value), key


# ---------------------------------------------------------------- the instrument, by hand
def test_spearman_correlation_and_percentile_by_hand():
    importance = {(0, "lora"): 0.3, (1, "lora"): 0.1, (2, "lora"): 0.2, (3, "lora"): 0.0}
    # prunability exactly opposite to importance: +1; exactly aligned: -1
    assert prunability_correlation({u: -v for u, v in importance.items()}, importance) == pytest.approx(1.0)
    assert prunability_correlation(dict(importance), importance) == pytest.approx(-1.0)
    assert spearman([1, 2], [2, 1]) is None and spearman([1, 1, 1], [1, 2, 3]) is None
    assert decision_percentile(0.5, [0.1, 0.5, 0.9, 1.0]) == pytest.approx((1 + 0.5) / 4)
    assert decision_percentile(0.0, [0.1, 0.2]) == 0.0
    active = [(0, "lora"), (0, "adapter"), (1, "lora"), (1, "adapter"), (2, "lora")]
    sets = random_sets_like([(1, "adapter"), (2, "lora")], active, 30, np.random.default_rng(0))
    assert all(sorted(t for _, t in s) == ["adapter", "lora"] for s in sets)
    assert len({tuple(s) for s in sets}) > 1


def test_a_decisive_unit_ranks_first_by_importance():
    """Standard init makes every unit an exact no-op; one LoRA unit is then made to carry the
    probe's labels. Masking it is the only thing that raises the loss."""
    net = supernet(0, scheme="standard")
    decisive = (2, "lora")
    with torch.no_grad():
        for _, branch in net.branches(decisive):
            branch.lora_B.weight.normal_(0.0, 2.0, generator=torch.Generator().manual_seed(5))
    inputs = batch(1)
    with torch.no_grad():
        net.model.eval()
        labels = net.model(**inputs).logits.argmax(-1)  # what the model predicts WITH the unit
    probe = Probe([{**inputs, "labels": labels}] * 2, num_labels=2, random_sets=8, learned_margin=0.02,
                  precision="fp32", seed=0)
    importance, reliability, base = probe.measure(net)
    assert max(importance, key=importance.get) == decisive and importance[decisive] > 0
    assert all(abs(v) < 1e-6 for u, v in importance.items() if u != decisive)
    # masking is non-destructive: everything is active again, the losses are unchanged
    assert net.active_ids() == net.unit_ids() and probe.losses(net.model) == base
    # a removal set without the decisive unit is never worse than random sets of the same types
    decision = probe.decision(net, [(0, "lora")], base, seed=0)
    assert decision["removed_rise"] == pytest.approx(0.0, abs=1e-6)
    assert decision["percentile"] <= 0.5 and len(decision["random_rises"]) == 8


def test_learned_nothing_flag():
    probe = Probe([], num_labels=2, random_sets=1, learned_margin=0.02, precision="fp32", seed=0)
    assert probe.learned(math.log(2)) is False and probe.learned(0.5) is True and probe.learned(None) is None
    assert Probe([], num_labels=1, random_sets=1, learned_margin=0.02, precision="fp32", seed=0).learned(0.1) is None


def test_fill_budget_restores_removed_units_last_first_while_they_fit():
    net = supernet(0)
    sizes = {u: sum(p.numel() for p in net.unit_parameters(u).values()) for u in net.unit_ids()}
    removed = [(0, "adapter"), (1, "lora"), (2, "adapter"), (3, "lora")]
    for uid in removed:
        net.deactivate(uid)
    from prunepeft.peft import count_parameters

    left = count_parameters(net).peft
    budget = left + sizes[(3, "lora")] + sizes[(0, "adapter")]  # room for the last-removed LoRA and one adapter
    restored = fill_budget(net, [f"{l}:{t}" for l, t in removed], budget)
    assert restored == [(3, "lora"), (2, "adapter")]  # (1, lora) no longer fits, (0, adapter) neither
    assert count_parameters(net).peft <= budget and net.is_active((2, "adapter"))
    assert all(p.requires_grad for p in net.unit_parameters((3, "lora")).values())


def test_diagnostics_change_nothing_the_search_decides(tmp_path, glue_dir):
    """Diagnostics on and off: byte-identical found_config.json and identical p in every round."""
    import json

    from conftest import compose_config, tiny_overrides_for

    from prunepeft.commands import search as search_cmd

    common = tiny_overrides_for(glue_dir) + [
        "task=sst2", "data.train_subset=96", "search.warmup.subset=32", "search.warmup.epochs=1",
        "search.warmup.snapshots=2", "search.retrain_epochs=0", "budget.params=2000", "search.k=2",
        "search.reinit=keep", "search.diagnostics.probe=64", "search.diagnostics.random_sets=5"]
    runs = {}
    for flag in ("false", "true"):
        run_dir = tmp_path / flag
        search_cmd.run(compose_config("search", common + [f"search.diagnostics.enabled={flag}"]), run_dir)
        runs[flag] = run_dir
    assert (runs["true"] / "found_config.json").read_bytes() == (runs["false"] / "found_config.json").read_bytes()
    rows = {f: [json.loads(line) for line in (d / "rounds.jsonl").read_text().splitlines()] for f, d in runs.items()}
    assert [r["combined"]["p"] for r in rows["true"]] == [r["combined"]["p"] for r in rows["false"]]
    diag = rows["true"][0]["diagnostics"]
    assert set(diag["importance"]) == set(rows["true"][0]["active_before"])
    assert set(diag["spearman"]) == set(rows["true"][0]["criteria"]) and "decision" in diag
    assert 0.0 <= diag["decision"]["percentile"] <= 1.0 and len(diag["decision"]["random_rises"]) == 5
    assert "diagnostics" not in rows["false"][0]
    warm = json.loads((runs["true"] / "warmup.json").read_text())
    assert [d["snapshot"] for d in warm["diagnostics"]] == [1, 2]


def test_rule_grid_constant_assignments_remove_the_same_set_under_every_combination():
    """Every combination is monotone in one criterion's score, so a constant assignment removes the
    same top-k whatever the combination; the oracle assignment correlates at least as well as argmax."""
    from prunepeft.pruning.partitions import Partition
    from prunepeft.analysis.rule_grid import COMBINATIONS, combined_scores, evaluate_grid
    from test_criteria import full_stats

    stats = full_stats(seed=3, n=8)  # layers 0-3, lora + adapter
    snapshot = score_snapshot(stats, ("weight", "zeros", "activation", "taylor"), CriterionContext(seed=1))
    partition = Partition(4)
    importance = {u: float(i) for i, u in enumerate(sorted(stats))}
    for c in ("weight", "activation"):
        per_unit = {u: c for u in stats}
        tops = {combo: sorted(select_top_k(combined_scores(combo, snapshot, per_unit, 3), 3, 0)) for combo in COMBINATIONS}
        assert len({tuple(t) for t in tops.values()}) == 1, tops

    class FakeProbe:  # loss rise of a removal set = sum of its units' importance (no model needed)
        def masked_rise(self, supernet, uids, base):
            return (sum(importance[u] for u in uids), 0.0, 0.0)

    from prunepeft.pruning.warmup import HybridAssignment

    taylor_everywhere = {key: "taylor" for key in partition.keys(stats)}
    assignment = HybridAssignment({key: "weight" for key in partition.keys(stats)},
                                  {"tendency": taylor_everywhere, "consensus": {key: "weight" for key in partition.keys(stats)}})
    grid = evaluate_grid(FakeProbe(), None, snapshot, partition, assignment, importance, (0.0, 0.0, 0.0),
                         [1.0, 5.0, 9.0, 13.0], k=3, seed=0)
    cells = grid["cells"]
    for c in ("weight", "zeros", "activation", "taylor"):
        pcts = {cells[f"const:{c}|{combo}"]["decision_percentile"] for combo in COMBINATIONS}
        assert len(pcts) == 1
    assert cells["argmax|paper"] == cells["const:weight|paper"] | {"draws": 1}
    # Each warm-up rule's S is judged too (here constant, so equal to the constant rows).
    assert cells["rule:tendency|zscore"] == cells["const:taylor|zscore"]
    assert cells["rule:consensus|rank"] == cells["const:weight|rank"]
    assert cells["oracle|rank"]["spearman"] >= cells["argmax|rank"]["spearman"] - 1e-12
    assert set(grid["oracle"]) == {"b0:lora", "b0:adapter", "b1:lora", "b1:adapter", "b2:lora", "b2:adapter",
                                   "b3:lora", "b3:adapter"}


def test_rule_grid_draws_keep_the_argmax_criteria_when_permuted_and_the_in_run_count_by_default():
    """`permuted` reuses exactly S_H's criteria (key link broken), `random` any criterion per key;
    offline grids ask for the issue's 100 draws, the in-run grid keeps DRAWS (each costs masked passes)."""
    from collections import Counter

    from prunepeft.analysis.rule_grid import DRAWS, assignments

    keys = ["k0", "k1", "k2", "k3"]
    argmax = {"k0": "weight", "k1": "weight", "k2": "taylor", "k3": "zeros"}
    criteria = ["weight", "zeros", "activation", "taylor"]
    rules = assignments(argmax, keys, criteria, argmax, np.random.default_rng(0), draws=100)
    assert len(rules["permuted"]) == len(rules["random"]) == 100
    assert all(Counter(d.values()) == Counter(argmax.values()) for d in rules["permuted"])
    assert len({tuple(d.values()) for d in rules["permuted"]}) == 12  # every distinct arrangement of w, w, t, z
    assert {c for d in rules["random"] for c in d.values()} == set(criteria)
    default = assignments(argmax, keys, criteria, argmax, np.random.default_rng(0))
    assert len(default["permuted"]) == len(default["random"]) == DRAWS == 5
    assert default["permuted"] == rules["permuted"][:DRAWS]  # the same seeded stream, drawn further


def test_signal_summary_and_the_printed_trust_line():
    from rich.console import Console

    from prunepeft.commands.display import print_signal
    from prunepeft.analysis.diagnostics import signal_summary

    rounds = [{"diagnostics": {"spearman_combined": 0.5, "spearman_null": -0.1, "decision": {"percentile": 0.2},
                               "learned": True}},
              {"diagnostics": {"spearman_combined": 0.1, "spearman_null": 0.1, "decision": {"percentile": 0.4},
                               "learned": False}},
              {"round": 3}]
    sig = signal_summary(rounds)
    assert sig["rounds"] == 2 and sig["spearman_combined"] == pytest.approx(0.3)
    assert sig["corrected"] == pytest.approx(0.3) and sig["decision_percentile"] == pytest.approx(0.3)
    assert sig["learned_nothing"] == 1 and signal_summary([{"round": 1}]) is None
    console = Console(record=True, width=400)
    print_signal(rounds, console)
    text = console.export_text()
    assert "+0.30 against +0.00" in text and "percentile 30 of random removals" in text
    assert "1 of 2 rounds LEARNED NOTHING" in text
