"""benchmarks/lib/paper_claims.py applies benchmarks/rules/paper_claims.md: verdicts on a synthetic runs tree.

Values (dev accuracy) are chosen so that every verdict is known by hand: 2 tasks x 2 seeds = 4 pairs,
t(0.975, 3) = 3.1824.
"""
from __future__ import annotations

import json

import pytest
from benchmarks.lib import paper_claims as claims_mod
from report_fixtures import make_run


TASK_SEEDS = [("sst2", 1), ("sst2", 2), ("stsb", 1), ("stsb", 2)]
HYBRID = [0.80, 0.82, 0.50, 0.56]
ARMS = {  # (command, extra make_run arguments) -> values in TASK_SEEDS order
    "lora": (("baseline", {"method": "lora"}), [0.79, 0.80, 0.50, 0.54]),  # hybrid − lora: 1, 2, 0, 2
    "adapter": (("baseline", {"method": "adapter"}), [0.70, 0.72, 0.40, 0.45]),
    "dora": (("baseline", {"method": "dora"}), [0.78, 0.80, 0.49, 0.55]),
    "random": (("search", {"strategy": "random"}), [0.75, 0.78, 0.44, 0.50]),  # 5, 4, 6, 6
    "matched": (("search", {"strategy": "random_matched"}), [0.79, 0.83, 0.49, 0.57]),  # 1, -1, 1, -1
    "taylor": (("search", {"strategy": "single", "criterion": "taylor"}), [0.81, 0.84, 0.52, 0.58]),  # -1, -2, -2, -2
    "weight": (("search", {"strategy": "single", "criterion": "weight"}), [0.60, 0.60, 0.30, 0.30]),
}
RATIOS = [0.20, 0.25, 0.28, 0.60]  # median 0.265 <= 0.3, one run > 0.5


def _with_cost(run, ratio):
    summary = json.loads((run / "summary.json").read_text())
    summary["cost"] = {"search_over_retrain": ratio}
    (run / "summary.json").write_text(json.dumps(summary))


@pytest.fixture
def tree(tmp_path):
    for i, (task, seed) in enumerate(TASK_SEEDS):
        _with_cost(make_run(tmp_path, f"{task}/hybrid-s{seed}", command="search", task=task, seed=seed,
                            value=HYBRID[i]), RATIOS[i])
        for arm, ((command, kw), values) in ARMS.items():
            make_run(tmp_path, f"{task}/{arm}-s{seed}", command=command, task=task, seed=seed, value=values[i], **kw)
        # never an arm of a claim: low fidelity, a transfer, a decoder
        make_run(tmp_path, f"{task}/low-s{seed}", command="search", task=task, seed=seed, value=0.1, fidelity="low")
        make_run(tmp_path, f"{task}/transfer-s{seed}", command="search", task=task, seed=seed, value=0.1,
                 transfer={"kind": "strategy", "from_task": "rte"})
        make_run(tmp_path, f"{task}/llama-s{seed}", command="search", task=task, seed=seed, value=0.1,
                 model="tiny_llama", family="llama")
    # (a'): uniform LoRA sized to hybrid's found parameters (170,000), two pairs only: -1 and +2
    for (task, seed), value in zip(TASK_SEEDS[:2], (0.81, 0.80)):
        make_run(tmp_path, f"{task}/lora-eq-s{seed}", command="baseline", method="lora", task=task, seed=seed,
                 value=value, config_over={"budget": {"params": 170000}})
    return tmp_path


def test_each_claims_verdict(tree, capsys):
    assert claims_mod.main([f"runs={tree}"]) == 0
    lines = capsys.readouterr().out.splitlines()[1:]
    assert len(lines) == 6
    a, a2, b, bm, c, d = lines
    # (a) best uniform = LoRA (mean 65.75 > DoRA 65.5 > adapter 56.75); 1.25 ± 3.1824 × 0.9574 / 2 = 1.52
    assert a.startswith("(a) PrunePEFT ≥ the best uniform PEFT at equal budget: supported — hybrid − lora "
                        "+1.25 points, 95 % [-0.27, +2.77], n=4 pairs (non-inferior")
    assert "best uniform by mean over the pairs: lora 65.8; dora 65.5; adapter 56.8" in a
    # (a') two pairs: undecided; sd 2.12, half 12.706 × 2.12 / √2 = 19.06, × 2.8 / 1.96 = 27.2
    assert a2 == "(a') PrunePEFT ≥ uniform LoRA at equal parameters: undecided (n=2, detectable ≥ 27.2 points)"
    assert b.startswith("(b) hybrid > random: supported — hybrid − random pruning +5.25 points, 95 % [+3.73, +6.77], "
                        "n=4 pairs (better")
    # mean 0, sd 1.155, half 1.84; detectable 1.84 × 2.8 / 1.96 = 2.6
    assert bm == ("(b) hybrid > type-matched random: undecided — hybrid − random, type-matched +0.00 points, "
                  "95 % [-1.84, +1.84], n=4 pairs (detectable ≥ 2.6 points)")
    # best single = taylor; -1.75 ± 3.1824 × 0.5 / 2 = 0.80: worse
    assert c.startswith("(c) hybrid > the best single criterion: not supported — hybrid − single taylor -1.75 points, "
                        "95 % [-2.55, -0.95], n=4 pairs (worse")
    assert c.endswith("singles by mean over the pairs: taylor 68.8; weight 45.0")
    assert d == ("(d) search ≤ 0.3 × retrain, wall-clock: undecided — median search/retrain 0.27, max 0.60, n=4 runs "
                 "(median ≤ 0.3, but a run > 0.5)")


def test_rules_by_hand():
    decide = claims_mod.decide
    assert decide([-3.0, -2.5, -3.5], "noninferior", "x")[0] == "not supported"  # upper end < -1
    assert decide([-0.5, -0.4, -0.6], "noninferior", "x")[0] == "supported"  # non-inferior, though worse
    assert "worse: upper end < 0" in decide([-0.5, -0.4, -0.6], "noninferior", "x")[1]
    assert decide([-2.0, 1.0, 0.5], "noninferior", "x")[0] == "undecided"
    assert decide([1.0], "better", "x") == ("undecided", "(n=1, detectable ≥ 2.5 points)")  # 1.96 × 0.9 × 2.8 / 1.96
    assert decide([], "better", "x") == ("undecided", "(n=0, detectable ≥ 3.2 points at 3 pairs)")
    assert claims_mod.cost_verdict([0.2, 0.3, 0.31]).verdict == "met"
    assert claims_mod.cost_verdict([0.35, 0.4, 0.1]).verdict == "not met"
    assert claims_mod.cost_verdict([]).verdict == "undecided"


def test_usage_and_empty_tree(tmp_path, capsys):
    assert claims_mod.main([]) == 2
    assert claims_mod.main([f"runs={tmp_path / 'nope'}"]) == 2
    assert claims_mod.main([f"runs={tmp_path}"]) == 0
    out = capsys.readouterr().out
    assert out.count("undecided") == 6


def test_a_missing_comparison_names_the_missing_side(tmp_path, capsys):
    # Baselines only (as the CPU tables after Table 2's baselines): the searches are missing, not the uniform runs.
    make_run(tmp_path, "sst2/lora-s1", command="baseline", method="lora", task="sst2", seed=1, value=0.8)
    assert claims_mod.main([f"runs={tmp_path}"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].endswith("; no PrunePEFT runs yet")
    assert lines[5].endswith("; no PrunePEFT runs and no single-criterion runs yet")
    # A search on another seed: both sides exist, no shared pair.
    make_run(tmp_path, "sst2/hybrid-s2", command="search", task="sst2", seed=2, value=0.8)
    assert claims_mod.main([f"runs={tmp_path}"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].endswith("; no (task, seed) where both PrunePEFT and a uniform run finished")
    assert lines[5].endswith("; no single-criterion runs yet")
    assert claims_mod.main([f"runs={tmp_path / 'sst2' / 'hybrid-s2'}"]) == 0
    assert capsys.readouterr().out.splitlines()[1].endswith("; no uniform runs yet")


def _summary_extra(run, **extra):
    summary = json.loads((run / "summary.json").read_text())
    summary.update(extra)
    (run / "summary.json").write_text(json.dumps(summary))


def test_equal_parameters_row_decides_a_prime_and_never_pools_into_a(tmp_path, capsys):
    # hybrid 80, 82, 84 (params 170,000, make_run's); LoRA at the budget 79, 80, 81 -> (a): +1, +2, +3.
    # LoRA, equal parameters (match_params = 170,000) 81, 81, 86 -> (a'): -1, +1, -2 = -0.67 ± 3.79.
    # Table 5's LoRA, equal compute (train.match_compute) 50 on every seed: in neither comparison.
    for seed, (h, lora, eq) in enumerate([(0.80, 0.79, 0.81), (0.82, 0.80, 0.81), (0.84, 0.81, 0.86)], start=1):
        make_run(tmp_path, f"h-s{seed}", command="search", task="sst2", seed=seed, value=h)
        make_run(tmp_path, f"lora-s{seed}", command="baseline", method="lora", task="sst2", seed=seed, value=lora)
        _summary_extra(make_run(tmp_path, f"lora-eq-s{seed}", command="baseline", method="lora", task="sst2",
                                seed=seed, value=eq), match_params={"run": f"h-s{seed}", "params": 170000})
        run = make_run(tmp_path, f"lora-ec-s{seed}", command="baseline", method="lora", task="sst2", seed=seed,
                       value=0.50)
        summary = json.loads((run / "summary.json").read_text())
        summary["train"]["match_compute"] = {"run": f"h-s{seed}", "target_examples": 6000, "epochs": 3, "examples": 6000}
        (run / "summary.json").write_text(json.dumps(summary))
    assert claims_mod.main([f"runs={tmp_path}"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "hybrid − lora +2.00 points, 95 % [-0.48, +4.48], n=3 pairs" in lines[1]  # sd 1: 4.3027 / sqrt(3) = 2.48
    assert "best uniform by mean over the pairs: lora 80.0" in lines[1]
    # -1, +1, -2: mean -0.667, sd 1.528, half 4.3027 x 1.528 / sqrt(3) = 3.79
    assert "hybrid − LoRA (hybrid's parameters) -0.67 points, 95 % [-4.46, +3.13], n=3 pairs" in lines[2]


def test_best_of_ranks_over_the_pairs_every_candidate_shares(tmp_path):
    """A single criterion whose CoLA runs have not finished is not chosen on its SST-2 pairs alone (rules (c):
    "the highest mean over the same pairs"); with no common pair each is ranked over its own, and it says so."""
    for i, (task, seed) in enumerate(TASK_SEEDS):
        make_run(tmp_path, f"{task}/hybrid-s{seed}", command="search", task=task, seed=seed, value=HYBRID[i])
        make_run(tmp_path, f"{task}/weight-s{seed}", command="search", task=task, seed=seed,
                 value=[0.82, 0.84, 0.30, 0.30][i], strategy="single", criterion="weight")
        if task == "sst2":  # taylor: SST-2 only, lower there than weight but above weight's mean over all four pairs
            make_run(tmp_path, f"{task}/taylor-s{seed}", command="search", task=task, seed=seed, value=0.80,
                     strategy="single", criterion="taylor")
    d = claims_mod.load(tmp_path)
    search = d[d["command"] == "search"]
    hybrid = claims_mod.one_config(search[search["label"] == "PrunePEFT"])
    singles = {c: claims_mod.one_config(g) for c, g in search[search["strategy"] == "single"].groupby("criterion")}
    # own pairs would give taylor 80.0 > weight 56.5; over the two SST-2 pairs both share: weight 83.0 > taylor 80.0
    assert claims_mod.best_of(hybrid, singles) == ("weight", "weight 83.0; taylor 80.0")
    only_stsb = {"weight": singles["weight"][singles["weight"]["task"] == "stsb"], "taylor": singles["taylor"]}
    assert claims_mod.best_of(hybrid, only_stsb) == (
        "taylor", "taylor 80.0; weight 30.0 (no pair common to all: each over its own pairs)")
    assert claims_mod.best_of(hybrid, {}) == (None, "")
