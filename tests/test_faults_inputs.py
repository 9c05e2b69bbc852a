"""Faults in the inputs: bad settings and names refused with one line naming the key; training that diverges.

Each test runs a problem of the reliability review (P1-P4, P14, P15, P18, P19, and issue 25's
inputs) through the real CLI (`cli.main`, in-process: Hydra and the exit codes take part) and
asserts the exit code, the one-line message (the key, the phase, the step), the absence of a
traceback, and that nothing was written where the input is refused before any work. Shared
helpers: tests/faults_helpers.py.
"""
from __future__ import annotations

import json

import pytest
from faults_helpers import TINY, one_line, run_cli
from faults_helpers import search_args  # noqa: F401  (a pytest fixture)

from prunepeft import cli
from prunepeft.run import record as runs
from prunepeft.run.io import read_json, read_jsonl



# -- P14, P15: NaN ---------------------------------------------------------------------------------
def test_nan_baseline_fails_naming_phase_step_and_lrs(glue_dir, tmp_path, capsys):
    run_dir = tmp_path / "nan"
    args = ["baseline", *TINY, f"data.dir={glue_dir}", "method=lora", "train.lr_peft=1e30", "train.lr_head=1e30"]
    code, _, err = run_cli([*args, f"hydra.run.dir={run_dir}"], capsys)
    line = one_line(err)
    assert code == 1 and "diverged" in line and "'train'" in line and "at step" in line and "lr_peft=1e+30" in line
    info = read_json(run_dir / "run.json")
    assert info["status"] == "failed" and "diverged" in info["error"]
    assert not (run_dir / "summary.json").exists() and not (run_dir / "DONE").exists()


def test_nan_search_names_the_warmup_not_a_criterion(search_args, tmp_path, capsys):
    run_dir = tmp_path / "nan"
    code, _, err = run_cli([*search_args, f"hydra.run.dir={run_dir}", "train.lr_peft=1e30", "train.lr_head=1e30",
                            "search.warmup.subset=64", "search.warmup.snapshots=1"], capsys)
    line = one_line(err)
    assert code == 1 and "'warmup'" in line and "criterion" not in line, line
    assert read_json(run_dir / "run.json")["status"] == "failed"


def test_allowed_nonfinite_steps_are_skipped_and_summary_is_strict_json(glue_dir, tmp_path, capsys):
    run_dir = tmp_path / "skip"
    args = ["baseline", *TINY, f"data.dir={glue_dir}", "method=lora", "train.lr_peft=1e30", "train.lr_head=1e30",
            "train.max_nonfinite_steps=1000", f"hydra.run.dir={run_dir}"]
    code, _, err = run_cli(args, capsys)
    assert code == 0, err
    text = (run_dir / "summary.json").read_text()
    json.loads(text, parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))
    assert any(e["kind"] == "nonfinite" for e in read_jsonl(run_dir / "events.jsonl"))


# -- P1-P4, P18, P19: inputs ----------------------------------------------------------------------
@pytest.mark.parametrize("override,expected", [
    ("data.train_subset=0", "data.train_subset=0"),
    ("data.eval_subset=0", "data.eval_subset=0"),
    ("search.warmup.subset=0", "search.warmup.subset=0"),
    ("data.train_subset=1.5", "data.train_subset=1.5 is neither a count"),
    ("data.train_subset=100000", "data.train_subset=100000 exceeds the"),
    ("model.local=/nonexistent/model", "model.local='/nonexistent/model' cannot be used with model 'tiny_bert'"),
    ("debug.kill_at=nowhere:1", "debug.kill_at must be"),
])
def test_bad_input_names_its_key(search_args, tmp_path, capsys, override, expected):
    run_dir = tmp_path / "run"
    code, _, err = run_cli([*search_args, override, f"hydra.run.dir={run_dir}"], capsys)
    line = one_line(err)
    assert code == 2 and expected in line, line
    assert not (run_dir / "run.json").exists()


def test_missing_model_local_never_falls_back_to_the_hub(glue_dir, tmp_path, capsys):
    """P4: a pretrained family with a mistyped path is refused before any hub access."""
    code, _, err = run_cli(["search", "task=rte", "model=roberta_base", "train=test", f"data.dir={glue_dir}",
                            f"model.local={tmp_path / 'nope'}", f"hydra.run.dir={tmp_path / 'run'}"], capsys)
    line = one_line(err)
    assert code == 2 and "nope" in line and "does not exist" in line, line


# -- issue 25: learning rates and the names that become paths -------------------------------------
@pytest.mark.parametrize("override,expected", [
    ("train.lr_peft=-0.001", "train.lr_peft must be finite and > 0"),
    ("train.lr_peft=0", "train.lr_peft must be finite and > 0"),
    ("train.lr_head=nan", "train.lr_head must be finite and > 0"),
    ("train.lr_backbone=inf", "train.lr_backbone must be finite and > 0"),
    ("train.lr_head=-1e-3", "train.lr_head must be finite and > 0"),
])
def test_learning_rates_must_be_finite_and_positive(search_args, glue_dir, tmp_path, capsys, override, expected):
    for args in ([*search_args], ["baseline", *TINY, f"data.dir={glue_dir}", "method=lora"]):
        run_dir = tmp_path / args[0]
        code, _, err = run_cli([*args, override, f"hydra.run.dir={run_dir}"], capsys)
        line = one_line(err)
        assert code == 2 and expected in line, line
        assert not run_dir.exists()


@pytest.mark.parametrize("override", ["task.name=../../../x", "model.name=../up", "strategy.name=a/b",
                                      "task.name=..", "model.name=/abs", "task.name="])
def test_names_that_become_paths_must_be_plain(search_args, glue_dir, tmp_path, capsys, monkeypatch, override):
    """Nothing is created anywhere: the check runs before Hydra makes the run directory (default path)."""
    root = tmp_path / "a" / "b" / "c" / "d"
    root.mkdir(parents=True)
    monkeypatch.chdir(root)
    before = sorted(tmp_path.rglob("*"))
    for args in ([a for a in search_args], ["baseline", *TINY, f"data.dir={glue_dir}", "method=lora"]):
        code, _, err = run_cli([*args, override], capsys)
        line = one_line(err)
        assert code == 2 and override.split("=")[0] in line and "plain name" in line, line
        assert sorted(tmp_path.rglob("*")) == before


def test_plain_names_accept_the_shipped_names():
    from prunepeft.config.compose import compose_config

    cfg = compose_config("search", ["task=rte", "model=tiny_bert", "train=test"])
    cli.check_names(cfg)
    for good in ("rte", "roberta_large", "qwen2.5-0.5b", "Llama-3-8B"):
        runs.check_plain_name("model.name", good)
