"""The run-output contract (prunepeft/run/outputs.py): one table of file names, one summary builder."""
from __future__ import annotations

import ast
from pathlib import Path

from prunepeft.config.typed import RunLabels
from prunepeft.run import outputs
from prunepeft.report.collect import lr_label
from prunepeft.train.loop import FitResult

PACKAGE = Path(__file__).resolve().parents[1] / "prunepeft"
# Every name of the contract: the module's string constants (file and directory names).
NAMES = frozenset(v for k, v in vars(outputs).items() if k.isupper() and isinstance(v, str)) | set(outputs.LOGS)
NAME_PREFIXES = ("supernet-", "job-")  # outputs.checkpoint_weights, outputs.sweep_job


def _cfg(arm=None):
    """summary.json's labels (config.typed.RunLabels) of a small run."""
    return RunLabels(task="rte", model="tiny_bert", seed=3, arm=arm, split="validation", metric="accuracy",
                     lr={"peft": 1e-3, "head": 2e-3, "backbone": 1e-5})


def test_summary_has_the_schema_version_and_the_fields_results_are_read_by():
    result = FitResult([{"epoch": 1, "metrics": {"validation": {"accuracy": 0.5}}}], {"validation": {"accuracy": 0.5}})
    s = outputs.summary("baseline", _cfg(), "lora", result, params={"peft": 1}, train={"epochs": 1}, run=None)
    assert s["schema_version"] == outputs.SCHEMA_VERSION == 2
    for key in ("command", "task", "model", "method", "seed", "primary", "params", "train", "metrics", "history"):
        assert key in s, key
    assert s["primary"] == {"split": "validation", "metric": "accuracy", "value": 0.5}
    assert s["lr"] == {"peft": 1e-3, "head": 2e-3, "backbone": 1e-5}
    # the head at its own rate is part of the lr setting (report.collect.lr_label); FFT: the backbone rate
    assert lr_label(s["lr"], "prunepeft") == "0.001 (head 0.002)" and lr_label(s["lr"], "fft") == "1e-05"
    assert lr_label(1e-3, "prunepeft") == "0.001"  # schema 1: a search's lr was a float


def test_search_only_summary_has_no_primary_value():
    s = outputs.summary("search", _cfg(), "prunepeft", FitResult([], {}), params={}, train={"epochs": 0}, strategy="hybrid")
    assert s["primary"]["value"] is None and s["strategy"] == "hybrid" and list(s)[-1] == "history"


def test_summary_arm_is_the_label_given_else_the_strategy_or_method():
    none = FitResult([], {})
    assert outputs.summary("search", _cfg(), "prunepeft", none, params={}, train={}, strategy="hybrid")["arm"] == "hybrid"
    assert outputs.summary("baseline", _cfg(), "lora", none, params={}, train={}, run=None)["arm"] == "lora"
    cfg = _cfg(arm="hybrid_agreement")  # both readings of the hybrid have strategy=hybrid; the arm tells them apart
    assert outputs.summary("search", cfg, "prunepeft", none, params={}, train={}, strategy="hybrid")["arm"] == "hybrid_agreement"


def _spelled_names(source: str) -> list[tuple[int, str]]:
    """(line, literal) of every string literal (docstrings aside) that is a contract name or a path
    ending in one; f-string pieces count (their constant parts are literals too)."""
    tree = ast.parse(source)
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            v = node.value
            if v in NAMES or v.startswith(NAME_PREFIXES) or any(v.endswith("/" + n) or v.startswith(n + "/") for n in NAMES):
                found.append((node.lineno, v))
    return found


def test_no_module_but_outputs_spells_a_run_file_name():
    """The contract cannot scatter again: a run-output name written as a literal anywhere in the package fails."""
    spelled = [f"{path.relative_to(PACKAGE)}:{line}: {value!r}"
               for path in sorted(PACKAGE.rglob("*.py")) if path != PACKAGE / "run" / "outputs.py"
               for line, value in _spelled_names(path.read_text())]
    assert not spelled, "use the names in prunepeft.run.outputs:\n" + "\n".join(spelled)


def test_the_scan_sees_literals_paths_and_f_strings_but_not_docstrings():
    src = '''"""Writes summary.json."""
def f(run, g):
    """Reads rounds.jsonl."""
    return run / "summary.json", run / ".hydra/config.yaml", f"{run}/warmup.json", f"supernet-{g:05d}.safetensors"
'''
    assert [v for _, v in _spelled_names(src)] == ["summary.json", ".hydra/config.yaml", "/warmup.json", "supernet-"]


def test_checkpoint_and_sweep_names():
    assert outputs.checkpoint_weights(3) == "supernet-00003.safetensors"
    assert outputs.sweep_job(12) == "job-00012.json"
    assert set(outputs.LOGS) == {outputs.EVENTS, outputs.ROUNDS}
