"""Baselines are runs like any other: `load_run`, `predict`, `evaluate` and `export` work on a
baseline's directory as on a search's (uniform LoRA/DoRA/adapter, head only, full fine-tuning), and
every file that search, baseline, export, predict and evaluate write follows the umask."""
from __future__ import annotations

import os
import stat

import numpy as np
import pandas as pd
import pytest
import torch

import prunepeft
from prunepeft.commands import baseline as baseline_cmd
from prunepeft.commands import evaluate as evaluate_cmd
from prunepeft.commands import export as export_cmd
from prunepeft.commands import predict as predict_cmd
from prunepeft.commands import search as search_cmd
from prunepeft.run.io import read_json

# fmt: the format `export` picks (to=auto): peft for LoRA/DoRA, prunepeft's own otherwise.
METHODS = {"lora": "peft", "dora": "peft", "adapter": "prunepeft", "head": "prunepeft", "fft": "prunepeft"}


@pytest.fixture(scope="module")
def baselines(glue_dir, tmp_path_factory):
    from conftest import compose_config, tiny_overrides_for

    root = tmp_path_factory.mktemp("baselines")
    for method in METHODS:
        baseline_cmd.run(compose_config("baseline", [*tiny_overrides_for(glue_dir), f"method={method}", "seed=4"]),
                         root / f"{method}-s4")
    return root


def _pairs(glue_dir, n=6) -> pd.DataFrame:
    return pd.read_parquet(glue_dir / "rte" / "validation.parquet").head(n)[["sentence1", "sentence2"]]


@pytest.mark.parametrize("method", list(METHODS))
def test_a_baseline_loads_predicts_evaluates_and_exports(baselines, glue_dir, compose_cfg, tmp_path, monkeypatch,
                                                         method):
    run = baselines / f"{method}-s4"
    summary = read_json(run / "summary.json")
    # load_run: the trained model; its metrics are the run's own (evaluate == summary.json)
    model, tokenizer = prunepeft.load_run(run)
    assert not model.training
    assert prunepeft.evaluate(run) == summary["metrics"]["validation"]
    assert evaluate_cmd.run(compose_cfg("evaluate", [f"run={run}"]))["equal_to_summary"] is True
    # predict: the API and the command agree with the loaded model
    rows = _pairs(glue_dir)
    enc = tokenizer(list(rows["sentence1"]), list(rows["sentence2"]), padding=True, truncation=True,
                    max_length=int(read_json(run / "run.json")["config"]["train"]["max_length"]), return_tensors="pt")
    with torch.no_grad():
        logits = model(**enc).logits.numpy()
    preds = prunepeft.predict(run, list(zip(rows["sentence1"], rows["sentence2"])))
    assert np.allclose(preds["logits"], logits, atol=1e-5)
    rows.to_csv(tmp_path / "in.tsv", sep="\t", index=False)
    predict_cmd.run(compose_cfg("predict", [f"run={run}", f"input={tmp_path / 'in.tsv'}", f"out={tmp_path / 'o.tsv'}"]))
    assert pd.read_csv(tmp_path / "o.tsv", sep="\t")["prediction"].tolist() == preds["prediction"].tolist()
    # export (the format the run's units allow), loaded back without the run: the same function
    monkeypatch.chdir(tmp_path)
    result = export_cmd.run(compose_cfg("export", [f"run={run}"]))
    assert result["format"] == METHODS[method]
    exported, _ = prunepeft.load_export(result["out"])
    with torch.no_grad():
        again = exported(**enc).logits.numpy()
    assert np.allclose(again, logits, atol=1e-5)
    assert np.allclose(prunepeft.predict(result["out"], list(zip(rows["sentence1"], rows["sentence2"])))["logits"],
                       logits, atol=1e-5)
    card = (tmp_path / result["out"] / "README.md").read_text()
    assert "- **Command:** `prunepeft baseline" in card


def test_fft_is_not_a_peft_export(baselines, compose_cfg, tmp_path):
    from prunepeft.errors import UserError

    with pytest.raises(UserError, match="full fine-tuning run.*to=prunepeft"):
        export_cmd.run(compose_cfg("export", [f"run={baselines / 'fft-s4'}", "to=peft", f"out={tmp_path / 'x'}"]))
    assert not (tmp_path / "x").exists()


def test_a_baseline_from_before_it_saved_weights_says_how_to_get_them(baselines, tmp_path):
    import shutil

    from prunepeft.errors import UserError

    old = tmp_path / "old"
    shutil.copytree(baselines / "lora-s4", old)
    (old / "found_config.json").unlink()
    with pytest.raises(UserError, match="no found_config.json.*restart=true"):
        prunepeft.load_run(old)


def test_the_cards_command_runs_again_as_printed(glue_dir, tmp_path, monkeypatch):
    """Through the CLI (as a user runs it): the card's command line, run again, trains the same run."""
    import shlex

    from conftest import cli_ok

    first = tmp_path / "first"
    monkeypatch.setenv("PRUNEPEFT_DATA_DIR", str(glue_dir))
    cli_ok(["baseline", "model=tiny_bert", "train=test", "task=rte", "method=lora", "seed=2", "data.train_subset=32",
            "data.eval_subset=16", f"hydra.run.dir={first}"])
    cli_ok(["export", f"run={first}", f"out={tmp_path / 'export'}"])
    card = (tmp_path / "export" / "README.md").read_text()
    command = card.split("- **Command:** `")[1].split("`")[0]
    words = shlex.split(command)
    assert words[:2] == ["prunepeft", "baseline"] and "method=lora" in words and "seed=2" in words, command
    monkeypatch.chdir(tmp_path)  # as printed: into the default run directory, under the working directory
    cli_ok(words[1:])
    again = tmp_path / "outputs" / "baseline" / "rte" / "tiny_bert" / "lora-s2"
    assert read_json(again / "summary.json")["metrics"] == read_json(first / "summary.json")["metrics"]


def test_every_file_each_command_writes_follows_the_umask(glue_dir, tmp_path, monkeypatch):
    """Under umask 027: files 0640, directories 0750, whoever created them (atomic writes, Hydra's log,
    peft's save_pretrained with safetensors' own 0600 writer, pandas for predict, the tracker)."""
    from conftest import cli_ok

    monkeypatch.setenv("PRUNEPEFT_DATA_DIR", str(glue_dir))
    monkeypatch.chdir(tmp_path)
    tiny = ["model=tiny_bert", "train=test", "task=rte", "data.train_subset=32", "data.eval_subset=16", "seed=3"]
    _pairs(glue_dir).to_csv(tmp_path / "in.tsv", sep="\t", index=False)
    before = set(tmp_path.rglob("*"))
    old = os.umask(0o027)
    try:
        cli_ok(["search", *tiny, "search.warmup.subset=16", "search.warmup.epochs=1", "search.warmup.snapshots=2",
                "search.retrain_epochs=1", "budget.params=2000", "search_space=[lora]", "logger=csv",
                "hydra.run.dir=runs/search"])
        cli_ok(["baseline", *tiny, "method=adapter", "hydra.run.dir=runs/adapter"])
        cli_ok(["baseline", *tiny, "method=fft", "hydra.run.dir=runs/fft"])
        cli_ok(["export", "run=runs/search", "out=exports/peft"])  # peft: adapter_model.safetensors
        cli_ok(["export", "run=runs/adapter", "out=exports/adapter"])
        cli_ok(["export", "run=runs/fft", "out=exports/fft"])
        cli_ok(["predict", "run=runs/adapter", "input=in.tsv", "out=preds/p.parquet"])
        cli_ok(["evaluate", "run=runs/fft", "out=preds/metrics.json"])
    finally:
        os.umask(old)
    written = sorted(set(tmp_path.rglob("*")) - before)
    assert (tmp_path / "exports/peft/adapter_model.safetensors") in written
    assert (tmp_path / "runs/fft/model.safetensors") in written and (tmp_path / "preds/p.parquet") in written
    wrong = [f"{p.relative_to(tmp_path)}: {stat.S_IMODE(p.stat().st_mode):o}" for p in written
             if not p.is_symlink() and stat.S_IMODE(p.stat().st_mode) != (0o750 if p.is_dir() else 0o640)]
    assert not wrong, wrong
