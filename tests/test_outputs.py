"""The run-output contract (prunepeft/outputs.py): one table of file names, one summary builder."""
from __future__ import annotations

import re
from pathlib import Path

from omegaconf import OmegaConf

from prunepeft import outputs
from prunepeft.report.collect import lr_label
from prunepeft.train.loop import FitResult

PACKAGE = Path(__file__).resolve().parents[1] / "prunepeft"
# Modules moved onto the contract; each names the run files only through prunepeft.outputs.
ON_CONTRACT = ("pruning/search.py", "pruning/stages.py", "pruning/rounds.py", "commands/baseline.py",
               "api.py", "report/collect.py")
NAMES = (outputs.RUN_JSON, outputs.SUMMARY, outputs.FOUND_CONFIG, outputs.WARMUP, outputs.ROUNDS,
         outputs.UNITS, outputs.HEAD)


def _cfg():
    return OmegaConf.create({"seed": 3, "task": {"name": "rte", "eval_splits": ["validation"], "primary_metric": "accuracy"},
                             "model": {"name": "tiny_bert"}, "train": {"lr_peft": 1e-3, "lr_head": 2e-3, "lr_backbone": 1e-5}})


def test_summary_has_the_schema_version_and_the_fields_results_are_read_by():
    result = FitResult([{"epoch": 1, "metrics": {"validation": {"accuracy": 0.5}}}], {"validation": {"accuracy": 0.5}})
    s = outputs.summary("baseline", _cfg(), "lora", result, params={"peft": 1}, train={"epochs": 1}, run=None)
    assert s["schema_version"] == outputs.SCHEMA_VERSION == 2
    for key in ("command", "task", "model", "method", "seed", "primary", "params", "train", "metrics", "history"):
        assert key in s, key
    assert s["primary"] == {"split": "validation", "metric": "accuracy", "value": 0.5}
    assert s["lr"] == {"peft": 1e-3, "head": 2e-3, "backbone": 1e-5}
    assert lr_label(s["lr"], "prunepeft") == "0.001" and lr_label(s["lr"], "fft") == "1e-05"
    assert lr_label(1e-3, "prunepeft") == "0.001"  # schema 1: a search's lr was a float


def test_search_only_summary_has_no_primary_value():
    s = outputs.summary("search", _cfg(), "prunepeft", FitResult([], {}), params={}, train={"epochs": 0}, strategy="hybrid")
    assert s["primary"]["value"] is None and s["strategy"] == "hybrid" and list(s)[-1] == "history"


def test_modules_on_the_contract_spell_no_run_file_name():
    for rel in ON_CONTRACT:
        text = (PACKAGE / rel).read_text()
        code = re.sub(r'"""[\s\S]*?"""', "", text)  # docstrings may name the files
        for name in NAMES:
            assert f'"{name}"' not in code, f"{rel} spells {name!r}: use prunepeft.outputs"
