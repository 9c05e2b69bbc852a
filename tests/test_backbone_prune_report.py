"""Early pruning of the backbone (issue 14, Deliver 4) in the report: one backbone kind per report,
the runs of each kind named when they mix (synthetic run trees, no training).
"""
from __future__ import annotations

import pytest

from prunepeft.errors import UserError


def _pruned(run_dir, heads=1 / 3, ffn=1 / 3):
    """Give a synthetic run's summary.json the `backbone` entry a pruned search writes."""
    import json

    path = run_dir / "summary.json"
    summary = json.loads(path.read_text())
    summary["backbone"] = {"heads": heads, "ffn": ffn, "params_before": 22713216, "params_after": 19115867,
                           "heads_kept": 48, "neurons_kept": 6144, "fraction_removed": 0.158}
    path.write_text(json.dumps(summary))
    return run_dir


def _tree(root):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from report_fixtures import make_run

    for seed in (1, 2):
        make_run(root, f"plain/s{seed}", command="search", task="sst2", seed=seed, value=0.9)
        make_run(root, f"lora/s{seed}", command="baseline", method="lora", task="sst2", seed=seed, value=0.88)
    return make_run


def test_backbone_label():
    from prunepeft.report.backbone_check import backbone_label

    assert backbone_label({}) == "unpruned" and backbone_label({"backbone": None}) == "unpruned"
    assert backbone_label({"backbone": {"heads": 1 / 3, "ffn": 0.5}}) == "pruned (heads 0.333, ffn 0.5)"


def test_report_refuses_mixed_backbones_naming_the_runs(tmp_path):
    from prunepeft.report import build_tables, collect_runs

    make_run = _tree(tmp_path)
    _pruned(make_run(tmp_path, "light/s1", command="search", task="sst2", seed=1, value=0.87, strategy="single",
                     criterion="output_ratio"))
    # an unfinished pruned run and a pruned run with a different setting that never finished: not in any table
    _pruned(make_run(tmp_path, "light/s2", command="search", task="sst2", seed=2, value=0.1, done=False), heads=0.5)
    df = collect_runs(tmp_path)
    assert dict(zip(df["run"], df["backbone"]))["light/s1"] == "pruned (heads 0.333, ffn 0.333)"
    with pytest.raises(UserError) as err:
        build_tables(df, ["table2"])
    msg = str(err.value)
    assert "unpruned backbone (4 runs): lora/s1, lora/s2, plain/s1, plain/s2" in msg
    assert "pruned (heads 0.333, ffn 0.333) backbone (1 runs): light/s1" in msg and "light/s2" not in msg
    # two pruning settings do not mix either; one kind alone is fine
    only = tmp_path / "only"
    _pruned(make_run(only, "a/s1", command="search", task="sst2", seed=1, value=0.87))
    _pruned(make_run(only, "b/s1", command="search", task="sst2", seed=1, value=0.86), heads=0.5)
    with pytest.raises(UserError, match=r"heads 0.5, ffn 0.333\) backbone \(1 runs\): b/s1"):
        build_tables(collect_runs(only), ["table2"])
    (only / "b/s1/summary.json").unlink()
    (only / "b/s1/DONE").unlink()
    tables = build_tables(collect_runs(only), ["table2"])
    assert tables[0].rows == [("minilm_l6", "PrunePEFT")]


def test_report_command_exits_2_on_mixed_backbones(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    make_run = _tree(tmp_path / "runs")
    _pruned(make_run(tmp_path / "runs", "light/s1", command="search", task="sst2", seed=1, value=0.87))
    cli = Path(sys.executable).with_name("prunepeft")
    proc = subprocess.run([str(cli), "report", f"runs={tmp_path / 'runs'}", f"out={tmp_path / 'out'}", "figures=false"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert "mix backbones" in proc.stderr and "light/s1" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "out" / "table2.md").exists()
