"""The Python API and the predict/evaluate commands on one real (tiny) finished search run."""
from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest
import torch

import prunepeft
from prunepeft.commands import evaluate as evaluate_cmd
from prunepeft.commands import predict as predict_cmd
from prunepeft.commands import search as search_cmd
from prunepeft.errors import UserError
from prunepeft.run.io import read_json

SEARCH = ["search.warmup.subset=32", "search.warmup.epochs=1", "search.warmup.snapshots=2",
          "search.retrain_epochs=1", "budget.params=2000", "search.k=2", "seed=5"]


@pytest.fixture(scope="module")
def run_dir(glue_dir, tmp_path_factory):
    from conftest import compose_config, tiny_overrides_for

    path = tmp_path_factory.mktemp("api") / "hybrid-s5"
    search_cmd.run(compose_config("search", tiny_overrides_for(glue_dir) + SEARCH), path)
    return path


def _pairs(glue_dir, n=12) -> pd.DataFrame:
    return pd.read_parquet(glue_dir / "rte" / "validation.parquet").head(n)


def test_load_run_returns_the_retrained_model_and_tokenizer(run_dir, glue_dir):
    model, tokenizer = prunepeft.load_run(run_dir)
    rows = _pairs(glue_dir, 4)
    max_length = read_json(run_dir / "run.json")["config"]["train"]["max_length"]
    enc = tokenizer(list(rows["sentence1"]), list(rows["sentence2"]), padding=True, truncation=True,
                    max_length=max_length, return_tensors="pt")
    with torch.no_grad():
        out = model(**enc).logits
    assert out.shape == (4, 2) and not model.training
    found = read_json(run_dir / "found_config.json")["units"]
    wrapped = {n for n, m in model.named_modules() if type(m).__name__ == "PeftLinear"}
    assert wrapped and len(found) > 0  # the found units are inside the model
    # prunepeft.predict gives the same logits (one pair at a time through the public API)
    preds = prunepeft.predict(run_dir, list(zip(rows["sentence1"], rows["sentence2"])))
    assert np.allclose(preds["logits"], out.numpy(), atol=1e-5)
    assert (preds["prediction"] == out.argmax(-1).numpy()).all()


def test_evaluate_equals_summary_json(run_dir, compose_cfg, capsys):
    summary = read_json(run_dir / "summary.json")
    assert prunepeft.evaluate(run_dir) == summary["metrics"]["validation"]
    result = evaluate_cmd.run(compose_cfg("evaluate", [f"run={run_dir}"]))
    assert result["equal_to_summary"] is True and "(equal to summary.json)" in capsys.readouterr().out
    with pytest.raises(UserError, match="unknown split 'dev'.*train, validation"):
        prunepeft.evaluate(run_dir, split="dev")
    with pytest.raises(UserError, match="'sst22'.*cola"):
        prunepeft.evaluate(run_dir, task="sst22")
    with pytest.raises(UserError, match="stsb.*1 labels"):
        evaluate_cmd.run(compose_cfg("evaluate", [f"run={run_dir}", "task=stsb"]))
    with pytest.raises(UserError, match="stsb.*1 labels"):
        prunepeft.evaluate(run_dir, task="stsb")


@pytest.mark.parametrize("suffix", [".tsv", ".parquet"])
def test_predict_command_writes_predictions(run_dir, glue_dir, compose_cfg, tmp_path, suffix):
    rows = _pairs(glue_dir)[["sentence1", "sentence2"]]
    src = tmp_path / f"in{suffix}"
    rows.to_parquet(src) if suffix == ".parquet" else rows.to_csv(src, sep="\t", index=False)
    out = tmp_path / f"out{suffix}"
    predict_cmd.run(compose_cfg("predict", [f"run={run_dir}", f"input={src}", f"out={out}"]))
    got = pd.read_parquet(out) if suffix == ".parquet" else pd.read_csv(out, sep="\t")
    expected = prunepeft.predict(run_dir, list(zip(rows["sentence1"], rows["sentence2"])))
    assert list(got.columns) == ["sentence1", "sentence2", "prediction", "logit_0", "logit_1"]
    assert got["prediction"].tolist() == expected["prediction"].tolist()
    assert np.allclose(got[["logit_0", "logit_1"]].to_numpy(), expected["logits"], atol=1e-5)


def test_predict_bad_inputs(run_dir, compose_cfg, tmp_path):
    (tmp_path / "in.tsv").write_text("text\nhello\n")
    with pytest.raises(UserError, match=r"lacks the text column\(s\) \['sentence1', 'sentence2'\].*\['text'\]"):
        predict_cmd.run(compose_cfg("predict", [f"run={run_dir}", f"input={tmp_path / 'in.tsv'}",
                                                f"out={tmp_path / 'o.tsv'}"]))
    with pytest.raises(UserError, match=r"'\.xlsx'; valid choices: \.csv, \.jsonl, \.parquet, \.tsv"):
        predict_cmd.validate(compose_cfg("predict", [f"run={run_dir}", f"input={tmp_path / 'in.tsv'}",
                                                     f"out={tmp_path / 'o.xlsx'}"]))
    with pytest.raises(UserError, match="does not exist"):
        predict_cmd.validate(compose_cfg("predict", [f"run={run_dir}", f"input={tmp_path / 'no.tsv'}",
                                                     f"out={tmp_path / 'o.tsv'}"]))
    with pytest.raises(UserError, match="has no found_config.json"):
        prunepeft.load_run(tmp_path)


def test_cli_predict_and_evaluate_bad_values_exit_2(tmp_path, capsys, monkeypatch):
    from prunepeft import cli

    for argv, text in ((["evaluate"], "evaluate needs run="), (["predict", f"run={tmp_path}"], "predict needs input="),
                       (["evaluate", f"run={tmp_path}", "task=sst22"], "task/sst22")):
        monkeypatch.setattr(sys, "argv", ["prunepeft", *argv])
        with pytest.raises(SystemExit) as info:
            cli.main(argv)
        err = capsys.readouterr().err
        assert info.value.code == 2 and text in err and "Traceback" not in err
