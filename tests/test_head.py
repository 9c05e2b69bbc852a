"""Where a regression head starts (prunepeft/models/head.py, docs/method.md#regression-head): the output bias
at the training labels' mean, by hand on every family's head; classification heads untouched; old runs
(which started at 0) split from new ones in the report, never pooled."""
from __future__ import annotations

import logging
import sys

import pytest
import torch
from omegaconf import OmegaConf

from prunepeft.errors import UserError
from prunepeft.models import build_tiny, get_family, start_regression_head
from prunepeft.models.head import output_layer
from prunepeft.report.configs import differing_keys, fingerprint


def tiny(family: str, num_labels: int):
    cfg = OmegaConf.create({"name": "t", "family": family, "kind": "tiny",
                            "tiny": {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
                                     "intermediate_size": 64, "vocab_size": 512}})
    return build_tiny(cfg, num_labels, 0)[0], get_family(family)


def _state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("family, layer_name", [("bert", "classifier"), ("roberta", "classifier.out_proj")])
def test_the_output_bias_starts_at_the_labels_mean(family, layer_name):
    model, fam = tiny(family, 1)
    before = _state(model)
    assert start_regression_head(model, fam, [1.0, 2.0, 6.0], "label_mean") == pytest.approx(3.0)
    after = model.state_dict()
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert changed == [f"{layer_name}.bias"]  # the output layer's bias only (not RoBERTa's classifier.dense)
    assert torch.equal(after[f"{layer_name}.bias"], torch.tensor([3.0]))
    assert output_layer(model, fam) is dict(model.named_modules())[layer_name]


def test_classification_heads_and_zero_are_left_as_initialised():
    model, fam = tiny("bert", 2)
    before = _state(model)
    assert start_regression_head(model, fam, [0, 1, 1], "label_mean") is None
    regression, _ = tiny("bert", 1)
    reg_before = _state(regression)
    assert start_regression_head(regression, fam, [1.0, 2.0, 6.0], "zero") is None
    for m, b in ((model, before), (regression, reg_before)):
        assert all(torch.equal(b[k], v) for k, v in m.state_dict().items())


def test_a_head_without_a_bias_says_so(caplog):
    model, fam = tiny("llama", 1)  # LlamaForSequenceClassification's `score` has no bias
    before = _state(model)
    with caplog.at_level(logging.WARNING, logger="prunepeft.models.head"):
        assert start_regression_head(model, fam, [1.0, 2.0, 6.0], "label_mean") is None
    assert "has no bias; it starts at 0" in caplog.text
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_a_bad_value_is_one_line_naming_the_key(capsys, monkeypatch):
    model, fam = tiny("bert", 1)
    with pytest.raises(UserError, match="train.regression_head_bias"):
        start_regression_head(model, fam, [1.0], "mean")
    from prunepeft import cli

    monkeypatch.setattr(sys, "argv", ["prunepeft"])
    with pytest.raises(SystemExit) as stop:
        cli.main(["baseline", "model=tiny_bert", "task=stsb", "train.regression_head_bias=mean"])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and "train.regression_head_bias" in err and "'mean'" in err
    assert "label_mean" in err and "Traceback" not in err


def test_runs_from_before_the_key_are_split_from_later_ones():
    """A regression run without the key started at 0 (IMPLIED_WHEN_ABSENT): its cell never pools with a
    label_mean run's. On a classification task the key is read by nothing and never splits."""
    def config(num_labels, bias=None):
        train = {"epochs": 2} | ({"regression_head_bias": bias} if bias else {})
        return {"task": {"name": "t", "num_labels": num_labels}, "train": train}

    old, new = fingerprint(config(1), "baseline", "lora"), fingerprint(config(1, "label_mean"), "baseline", "lora")
    assert old["train.regression_head_bias"] == "zero" and new["train.regression_head_bias"] == "label_mean"
    assert differing_keys([old, new]) == ["train.regression_head_bias"]
    cls_old, cls_new = fingerprint(config(2), "baseline", "lora"), fingerprint(config(2, "label_mean"), "baseline", "lora")
    assert "train.regression_head_bias" not in cls_old and differing_keys([cls_old, cls_new]) == []
    assert fingerprint({}, "baseline", "lora") == {}  # an unknown config stays unknown


def test_a_baseline_on_stsb_starts_its_head_at_the_subsets_mean(glue_dir, tmp_path, monkeypatch):
    import numpy as np
    import pandas as pd

    from conftest import cli_ok
    from prunepeft.data.subsets import stratified_indices

    monkeypatch.setenv("PRUNEPEFT_DATA_DIR", str(glue_dir))
    cli_ok(["baseline", "model=tiny_bert", "train=test", "task=stsb", "method=lora", "seed=1",
            "data.train_subset=32", "data.eval_subset=16", f"hydra.run.dir={tmp_path / 'run'}"])
    labels = pd.read_parquet(glue_dir / "stsb" / "train.parquet")["label"].to_numpy()
    picked = stratified_indices(labels, 32, 1, True, "data.train_subset")
    log = (tmp_path / "run" / "baseline.log").read_text()
    assert f"output bias starts at the training labels' mean {float(np.mean(labels[picked])):.4f}" in log


def test_a_finished_run_from_before_the_key_is_refused_on_resume(glue_dir, tmp_path, monkeypatch, capsys):
    """The exception to "a key the old record lacks is no difference": a regression run recorded without the
    key started its head at 0, so a new invocation (label_mean) is a different configuration, named."""
    import json

    from conftest import cli_ok
    from prunepeft import cli
    from prunepeft.run.identity import config_differences

    monkeypatch.setenv("PRUNEPEFT_DATA_DIR", str(glue_dir))
    run = tmp_path / "run"
    args = ["baseline", "model=tiny_bert", "train=test", "task=stsb", "method=lora", "seed=1", "data.train_subset=32",
            "data.eval_subset=16", f"hydra.run.dir={run}"]
    cli_ok(args)
    record = json.loads((run / "run.json").read_text())
    del record["config"]["train"]["regression_head_bias"]  # as a run written before the key existed
    (run / "run.json").write_text(json.dumps(record))
    monkeypatch.setattr(sys, "argv", ["prunepeft"])
    with pytest.raises(SystemExit) as stop:
        cli.main(args)
    err = capsys.readouterr().err
    assert stop.value.code == 2 and "train.regression_head_bias: 'zero' -> 'label_mean'" in err
    # classification: the key is never read, so an old record without it is still the same run
    old = {"task": {"num_labels": 2}, "train": {"epochs": 2}}
    assert config_differences(old, {"task": {"num_labels": 2}, "train": {"epochs": 2, "regression_head_bias": "label_mean"}}) == []
