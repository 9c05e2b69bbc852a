"""Table 5's type-matched random arm (`strategy=random_matched`, prunepeft/pruning/matched.py) on tiny_bert."""
from __future__ import annotations

import sys
from collections import Counter

import pytest

from prunepeft import cli
from prunepeft.commands import search as search_cmd
from prunepeft.errors import UserError
from prunepeft.run.io import read_json
from prunepeft.pruning.matched import draw, source_counts

# tiny_bert: 4 layers x (lora 512, adapter 552) = 8 units; B = 2,000 keeps 3 of them.
SEARCH = ["search.warmup.subset=32", "search.warmup.epochs=1", "search.warmup.snapshots=2",
          "search.retrain_epochs=1", "budget.params=2000", "search.k=2"]


def _types(run_dir) -> Counter:
    return Counter(u.split(":")[1] for u in read_json(run_dir / "found_config.json")["units"])


@pytest.fixture(scope="module")
def hybrid_dir(glue_dir, tmp_path_factory):
    from conftest import compose_config, tiny_overrides_for

    run_dir = tmp_path_factory.mktemp("hybrid")
    search_cmd.run(compose_config("search", tiny_overrides_for(glue_dir) + SEARCH), run_dir)
    return run_dir


def _matched(compose_cfg, tiny_overrides, source, run_dir, seed=42):
    cfg = compose_cfg("search", tiny_overrides + SEARCH + ["strategy=random_matched", f"strategy.from_run={source}",
                                                           f"seed={seed}"])
    return search_cmd.run(cfg, run_dir)


def test_keeps_the_hybrids_units_per_type_and_retrains_like_a_search(compose_cfg, tiny_overrides, hybrid_dir, tmp_path):
    summary = _matched(compose_cfg, tiny_overrides, hybrid_dir, tmp_path / "m")
    assert _types(tmp_path / "m") == _types(hybrid_dir) == Counter(source_counts(hybrid_dir))
    for name in ("run.json", "found_config.json", "summary.json", "DONE", "units.safetensors", "head.safetensors"):
        assert (tmp_path / "m" / name).exists(), name
    assert not (tmp_path / "m" / "warmup.json").exists()  # no warm-up, no rounds: one seeded draw
    assert summary["strategy"] == "random_matched" and summary["search"]["rounds"] == 0
    assert summary["matched"] == {"from_run": str(hybrid_dir)} and summary["transfer"] is None
    cost = summary["cost"]
    assert cost["search_s"] == 0 and cost["retrain_s"] > 0 and cost["search_over_retrain"] == 0
    assert summary["params"]["peft"] == read_json(hybrid_dir / "summary.json")["params"]["peft"]  # same sizes per type
    # the same seed draws the same units
    _matched(compose_cfg, tiny_overrides, hybrid_dir, tmp_path / "again")
    assert read_json(tmp_path / "again" / "found_config.json")["units"] == read_json(tmp_path / "m" / "found_config.json")["units"]


def test_the_draw_is_seeded_uniform_within_each_type():
    units = [(layer, t) for layer in range(12) for t in ("lora", "adapter")]
    counts = {"lora": 5, "adapter": 2}
    a = draw(units, counts, 1)
    assert Counter(t for _, t in a) == Counter(counts) and a == sorted(a) and len(set(a)) == 7
    assert draw(list(reversed(units)), counts, 1) == a  # the candidates' order does not matter
    draws = {tuple(draw(units, counts, seed)) for seed in range(1, 6)}
    assert len(draws) == 5  # different seeds, different draws
    assert draw(units, {"lora": 12}, 3) == [u for u in units if u[1] == "lora"]
    with pytest.raises(UserError, match="keeps 13 lora unit"):
        draw(units, {"lora": 13}, 1)
    with pytest.raises(UserError, match="keeps 1 dora unit"):
        draw(units, {"dora": 1}, 1)


def test_missing_or_unfinished_source_is_one_line_before_run_json(compose_cfg, tiny_overrides, tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(UserError, match=f"strategy.from_run: {missing} not found"):
        _matched(compose_cfg, tiny_overrides, missing, tmp_path / "a")
    assert not (tmp_path / "a" / "run.json").exists()
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    (unfinished / "run.json").write_text("{}")
    with pytest.raises(UserError, match=f"strategy.from_run: {unfinished} is unfinished"):
        _matched(compose_cfg, tiny_overrides, unfinished, tmp_path / "b")
    assert not (tmp_path / "b" / "run.json").exists()
    with pytest.raises(UserError, match="strategy=random_matched needs strategy.from_run"):
        search_cmd.validate(compose_cfg("search", tiny_overrides + ["strategy=random_matched"]))


def test_cli_exit_2_names_the_path(glue_dir, tmp_path, capsys, monkeypatch):
    missing, run_dir = tmp_path / "no_hybrid", tmp_path / "run"
    argv = ["search", "model=tiny_bert", "task=rte", "train=test", f"data.dir={glue_dir}", "data.train_subset=32",
            "strategy=random_matched", f"strategy.from_run={missing}", f"hydra.run.dir={run_dir}"]
    monkeypatch.setattr(sys, "argv", ["prunepeft", *argv])
    with pytest.raises(SystemExit) as stop:
        cli.main(argv)
    out, err = capsys.readouterr()
    assert stop.value.code == 2 and "Traceback" not in out + err
    lines = [line for line in err.splitlines() if str(missing) in line]
    assert len(lines) == 1 and "not found" in lines[0]
    assert not (run_dir / "run.json").exists()


def test_table5_has_its_own_row_never_a_transfer(tmp_path):
    """The matched arm reads strategy.from_run (the hybrid run), yet it is Table 5's row, not Table 6's."""
    from report_fixtures import make_run

    from prunepeft.report import build_tables, collect_runs, to_markdown

    for seed, (hyb, rnd, matched) in enumerate([(0.80, 0.70, 0.76), (0.84, 0.72, 0.78)], start=1):
        hybrid = make_run(tmp_path, f"h{seed}", command="search", task="sst2", seed=seed, value=hyb)
        make_run(tmp_path, f"r{seed}", command="search", task="sst2", seed=seed, value=rnd, strategy="random")
        make_run(tmp_path, f"m{seed}", command="search", task="sst2", seed=seed, value=matched,
                 strategy="random_matched", config_over={"strategy": {"from_run": str(hybrid)}})
    runs = collect_runs(tmp_path)
    assert runs["transfer_kind"].isna().all()
    t5, t6 = build_tables(runs, ["table5", "table6"])
    assert [r[1] for r in t5.rows] == ["Random pruning", "Random, type-matched", "PrunePEFT"]
    md = to_markdown(t5)
    assert "| minilm_l6 | Random, type-matched | -5.0 ± 1.4 (n=2) |" in md  # paired: -4 and -6 points
    assert "type-matched" not in to_markdown(t6)
