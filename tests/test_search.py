"""The search end to end on tiny_bert with a real RTE slice (in-process: compose + run)."""
from __future__ import annotations

import json

import pytest

from prunepeft.commands import search as search_cmd
from prunepeft.errors import UserError
from prunepeft.run.io import read_json, read_jsonl
from prunepeft.peft.units import parse_unit_key, unit_key
from prunepeft.pruning.selection import removal_order
from prunepeft.pruning.search import SimulatedCrash

# tiny_bert: LoRA r=4 on q,v = 512 params/unit, adapter b=8 = 552; supernet 8 units = 4,256.
SEARCH = ["search.warmup.subset=32", "search.warmup.epochs=1", "search.warmup.snapshots=2",
          "search.retrain_epochs=1", "budget.params=2000", "search.k=2"]


@pytest.fixture
def search_overrides(tiny_overrides):
    return tiny_overrides + SEARCH


def _run(compose_cfg, overrides, run_dir):
    return search_cmd.run(compose_cfg("search", overrides), run_dir)


@pytest.fixture(scope="module")
def hybrid_run(glue_dir, tmp_path_factory):
    """One finished hybrid search, shared by the tests that only read it (CI time)."""
    from conftest import compose_config, tiny_overrides_for

    run_dir = tmp_path_factory.mktemp("hybrid")
    summary = search_cmd.run(compose_config("search", tiny_overrides_for(glue_dir) + SEARCH), run_dir)
    return run_dir, summary


def test_hybrid_search_writes_outputs_and_meets_budget(hybrid_run):
    tmp_path, summary = hybrid_run
    for name in ("run.json", "events.jsonl", "warmup.json", "rounds.jsonl", "found_config.json",
                 "summary.json", "DONE", "units.safetensors", "head.safetensors"):
        assert (tmp_path / name).exists(), name
    rounds = read_jsonl(tmp_path / "rounds.jsonl")
    # 4,256 -> top-2 -> top-2 -> last round down to <= 2,000: every round but the last removes k = 2.
    assert all(len(r["removed"]) == 2 for r in rounds[:-1])
    assert rounds[-1]["last"] and rounds[-1]["params_left"] <= 2000
    assert all(r["params_left"] > 2000 for r in rounds[:-1])
    found = read_json(tmp_path / "found_config.json")
    assert found["params"]["peft"] == summary["params"]["peft"] <= 2000
    assert len(found["units"]) == 8 - sum(len(r["removed"]) for r in rounds)
    # the removed units are exactly the highest-p ones of each round (never skipping one)
    # (exact ties in p go by the search's own seeded permutation, seed + round)
    for r in rounds:
        p = {parse_unit_key(u): v for u, v in r["combined"]["p"].items()}
        ranked = [unit_key(u) for u in removal_order(p, summary["seed"] + r["round"])]
        assert r["removed"] == ranked[: len(r["removed"])]
    warm = read_json(tmp_path / "warmup.json")
    assert set(warm["assignment"]) == {f"b{b}:{t}" for b in range(4) for t in ("lora", "adapter")}
    assert set(warm["assignment"].values()) <= {"weight", "zeros", "threshold", "activation", "taylor", "gradient"}
    assert summary["search"]["epoch_equivalents"] > 0 and summary["primary"]["metric"] == "accuracy"
    assert 0.0 <= summary["primary"]["value"] <= 1.0


def test_same_seed_same_found_config(compose_cfg, search_overrides, tmp_path, hybrid_run):
    _run(compose_cfg, search_overrides, tmp_path / "b")
    a = read_json(hybrid_run[0] / "found_config.json")
    b = read_json(tmp_path / "b" / "found_config.json")
    assert a == b
    assert read_jsonl(hybrid_run[0] / "rounds.jsonl")[0]["combined"] == read_jsonl(tmp_path / "b" / "rounds.jsonl")[0]["combined"]


def test_crash_and_resume_gives_the_same_configuration(compose_cfg, search_overrides, tmp_path, hybrid_run):
    straight_dir = hybrid_run[0]
    crashed = tmp_path / "crashed"
    with pytest.raises(SimulatedCrash):
        _run(compose_cfg, search_overrides + ["debug.crash_after_round=1"], crashed)
    assert not (crashed / "DONE").exists()
    assert read_json(crashed / "run.json")["status"] == "failed"
    rows = read_jsonl(crashed / "rounds.jsonl")
    assert len(rows) == 1
    # mutation audit M31: a round logged but not checkpointed (a crash between the two) must be dropped
    with open(crashed / "rounds.jsonl", "a") as f:
        f.write(json.dumps({**rows[0], "round": 2}) + "\n")
    _run(compose_cfg, search_overrides, crashed)  # resumes from round 1
    assert [r["round"] for r in read_jsonl(crashed / "rounds.jsonl")] == list(range(1, len(read_jsonl(straight_dir / "rounds.jsonl")) + 1))
    assert read_json(crashed / "run.json")["attempts"] == 2
    straight = read_json(straight_dir / "found_config.json")
    assert read_json(crashed / "found_config.json") == straight
    removed = [r["removed"] for r in read_jsonl(crashed / "rounds.jsonl")]
    assert removed == [r["removed"] for r in read_jsonl(straight_dir / "rounds.jsonl")]


def test_resume_with_reinit_keep_restores_units_and_head(compose_cfg, search_overrides, tmp_path):
    keep = search_overrides + ["search.reinit=keep"]
    _run(compose_cfg, keep, tmp_path / "straight")
    with pytest.raises(SimulatedCrash):
        _run(compose_cfg, keep + ["debug.crash_after_round=1"], tmp_path / "crashed")
    _run(compose_cfg, keep, tmp_path / "crashed")
    straight = read_jsonl(tmp_path / "straight" / "rounds.jsonl")
    resumed = read_jsonl(tmp_path / "crashed" / "rounds.jsonl")
    # round 2 starts from round 1's trained weights: identical statistics only if they were restored
    assert resumed[1]["statistics"] == straight[1]["statistics"]
    assert read_json(tmp_path / "crashed" / "found_config.json") == read_json(tmp_path / "straight" / "found_config.json")
    # a crash between the warm-up and round 1: round 1 must still start from the warm-up-trained weights
    with pytest.raises(SimulatedCrash):
        _run(compose_cfg, keep + ["debug.crash_after_round=0"], tmp_path / "crashed0")
    assert not (tmp_path / "crashed0" / "rounds.jsonl").exists()
    _run(compose_cfg, keep, tmp_path / "crashed0")
    resumed0 = read_jsonl(tmp_path / "crashed0" / "rounds.jsonl")
    assert resumed0[0]["statistics"] == straight[0]["statistics"]
    assert read_json(tmp_path / "crashed0" / "found_config.json") == read_json(tmp_path / "straight" / "found_config.json")


def test_finished_run_is_skipped(compose_cfg, search_overrides, hybrid_run, capsys):
    run_dir, first = hybrid_run
    stamp = (run_dir / "summary.json").stat().st_mtime_ns
    again = _run(compose_cfg, search_overrides, run_dir)
    assert again == json.loads(json.dumps(first))
    assert (run_dir / "summary.json").stat().st_mtime_ns == stamp
    assert "already finished" in capsys.readouterr().out


def test_run_dir_with_another_config_is_refused_not_skipped(compose_cfg, search_overrides, hybrid_run):
    """A finished directory re-invoked with a different lr must not print the old result as the new one."""
    run_dir, _ = hybrid_run
    stamp = (run_dir / "summary.json").stat().st_mtime_ns
    with pytest.raises(UserError, match=r"finished run with a different configuration \(train.lr_peft: 0.001 -> 0.0005\)"):
        _run(compose_cfg, search_overrides + ["train.lr_peft=5e-4"], run_dir)
    assert (run_dir / "summary.json").stat().st_mtime_ns == stamp and (run_dir / "DONE").exists()
    # watching or data-location keys are not a different run
    _run(compose_cfg, search_overrides + ["train.progress=true", "debug.crash_after_round=1"], run_dir)


@pytest.mark.parametrize("strategy", ["single", "random", "hybrid_no_partition", "reference"])
def test_every_strategy_runs_end_to_end(compose_cfg, search_overrides, tmp_path, strategy):
    summary = _run(compose_cfg, search_overrides + [f"strategy={strategy}"], tmp_path)
    assert summary["params"]["peft"] <= 2000
    assert not (tmp_path / "warmup.json").exists() or strategy == "reference"
    rounds = read_jsonl(tmp_path / "rounds.jsonl")
    assert rounds and rounds[-1]["params_left"] <= 2000


def test_strategy_none_retrains_the_whole_supernet(compose_cfg, search_overrides, tmp_path):
    summary = _run(compose_cfg, search_overrides + ["strategy=none"], tmp_path)
    assert summary["params"]["peft"] == 4 * 512 + 4 * 552
    assert not (tmp_path / "rounds.jsonl").exists()


def test_budget_above_supernet_prunes_nothing(compose_cfg, search_overrides, tmp_path):
    summary = _run(compose_cfg, search_overrides + ["budget.params=100000"], tmp_path)
    assert summary["params"]["peft"] == 4256 and summary["search"]["rounds"] == 0


def test_budget_below_smallest_unit_is_a_clear_error(compose_cfg, search_overrides, tmp_path):
    with pytest.raises(UserError, match="below the smallest unit"):
        _run(compose_cfg, search_overrides + ["budget.params=100"], tmp_path)
    assert not (tmp_path / "run.json").exists()  # nothing written for a bad input


@pytest.mark.parametrize("override, message", [
    ("search.reinit=fresh", "search.reinit 'fresh'; valid choices: keep, paper, standard"),
    ("search.fidelity=medium", "search.fidelity 'medium'; valid choices: high, low"),
    ("strategy.criterion=magnitude", "criterion 'magnitude'; valid choices: activation"),
    ("search.k=0", "search.k must be >= 1"),
    # checked up front, not first when the warm-up scores its first snapshot (after run.json exists)
    ("search.threshold.quantile=1.5", "search.threshold.quantile must be in"),
    ("search.threshold.t=abc", "search.threshold.t must be >= 0 or null, got 'abc'"),  # null default: untyped key
    ("search.zeros.rel_tol=-1", "search.zeros.rel_tol must be >= 0"),
    ("search.warmup.snapshots=0", "search.warmup.snapshots must be >= 1"),
    ("search.max_rounds=0", "search.max_rounds must be >= 1"),
    ("search.partition_cuts=[0.5,0.2]", "search.partition_cuts must be non-decreasing"),
    # task and train keys shared with `baseline`: checked before anything trains
    ("task.primary_metric=f2", "task.primary_metric='f2' is not one of task.metrics; valid choices: accuracy"),
    ("train.precision=fp8", "unknown train.precision 'fp8'; valid choices: auto, bf16, fp32"),
])
def test_bad_search_keys_name_the_value_and_the_choices(compose_cfg, search_overrides, tmp_path, override, message):
    overrides = search_overrides + (["strategy=single"] if "criterion" in override else []) + [override]
    with pytest.raises(UserError, match=message.replace("(", r"\(")):
        _run(compose_cfg, overrides, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_strategy_transfer_reuses_the_assignment(compose_cfg, search_overrides, tmp_path, hybrid_run):
    summary = _run(compose_cfg, search_overrides + [f"strategy.from_run={hybrid_run[0]}"], tmp_path / "t")
    assert not (tmp_path / "t" / "warmup.json").exists()
    assert summary["transfer"]["kind"] == "strategy"
    with pytest.raises(UserError, match="warmup.json"):
        _run(compose_cfg, search_overrides + [f"strategy.from_run={tmp_path / 'nowhere'}"], tmp_path / "u")


def test_max_rounds_last_round_still_meets_the_budget(compose_cfg, search_overrides, tmp_path):
    # 4,256 params, k=2, B=2,000 needs >= 2 rounds; with max_rounds=1 the one round must go down to B
    summary = _run(compose_cfg, search_overrides + ["strategy=random", "search.max_rounds=1"], tmp_path)
    rounds = read_jsonl(tmp_path / "rounds.jsonl")
    assert len(rounds) == 1 and rounds[0]["last"] and len(rounds[0]["removed"]) > 2
    assert rounds[0]["params_left"] <= 2000 and summary["params"]["peft"] <= 2000
    p = {parse_unit_key(u): v for u, v in rounds[0]["combined"]["p"].items()}
    ranked = [unit_key(u) for u in removal_order(p, summary["seed"] + 1)]  # the search's own tie-break
    assert rounds[0]["removed"] == ranked[: len(rounds[0]["removed"])]  # still a prefix by p


def test_transferred_assignment_missing_a_partition_is_a_clear_error(compose_cfg, search_overrides, tmp_path):
    source = tmp_path / "source"
    source.mkdir()
    (source / "warmup.json").write_text(json.dumps({"assignment": {"b0:lora": "weight", "b0:adapter": "taylor"}}))
    with pytest.raises(UserError, match="no criterion for partition 'b1:"):
        _run(compose_cfg, search_overrides + [f"strategy.from_run={source}"], tmp_path / "t")
    assert not (tmp_path / "t" / "run.json").exists()  # checked before anything is written
    # a non-hybrid strategy cannot use S_H: refused, rather than a run labelled "strategy transfer"
    with pytest.raises(UserError, match="strategy.from_run .* needs strategy=hybrid, got strategy=random"):
        _run(compose_cfg, search_overrides + ["strategy=random", f"strategy.from_run={source}"], tmp_path / "r")
    assert not (tmp_path / "r" / "run.json").exists()
