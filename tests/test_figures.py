"""Figures 1/3 and the per-run round plots from a synthetic tree: files, sizes, panel counts, data."""
from __future__ import annotations

from collections import Counter

import pytest
from omegaconf import OmegaConf
from report_fixtures import add_search_files, make_run

from prunepeft.commands.report import run as report_run
from prunepeft.report import build_figures, collect_runs
from prunepeft.report.figures import figure3, pick_counts


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """Two tasks × two seeds of PrunePEFT with search files, plus a baseline and an unfinished search."""
    root = tmp_path_factory.mktemp("runs")
    for task in ("rte", "sst2"):
        for seed in (1, 2):
            run = make_run(root, f"{task}/hybrid/s{seed}", command="search", task=task, seed=seed, value=0.7)
            add_search_files(run, {0: ["lora"], 3: ["lora", "adapter"], 5: ["adapter"] if seed == 1 else []}, seed=seed)
    make_run(root, "rte/fft/s1", command="baseline", method="fft", task="rte", seed=1, value=0.7)
    unfinished = make_run(root, "rte/hybrid/s9", command="search", task="rte", seed=9, value=0.7, done=False)
    add_search_files(unfinished, {})
    return root


def test_pick_counts_merge_warmup_and_rounds(tree):
    counts = pick_counts(tree / "rte" / "hybrid" / "s1")
    # warm-up taylor {0:lora: 3, 1:adapter: 1} + one top-k pick per round (1:lora, 2:lora, 3:lora)
    assert counts["taylor"] == Counter({"0:lora": 3, "1:adapter": 1, "1:lora": 1, "2:lora": 1, "3:lora": 1})
    assert counts["gradient"] == Counter({"0:adapter": 3})  # only in rounds.jsonl


def test_figures_written_with_expected_panels(tree, tmp_path):
    files = {f.name: f for f in build_figures(collect_runs(tree), tmp_path)}
    # Figure 1: one panel per criterion that picked anything (weight, activation, taylor, gradient).
    assert files["figure1_minilm_l6"].panels == 4
    # Figure 3: RTE, SST-2 and all tasks together.
    assert files["figure3_minilm_l6"].panels == 3
    rounds = sorted(n for n in files if n.startswith("rounds_"))
    assert rounds == ["rounds_rte__hybrid__s1", "rounds_rte__hybrid__s2", "rounds_sst2__hybrid__s1",
                      "rounds_sst2__hybrid__s2"]  # unfinished and baseline runs get none
    for f in files.values():
        assert f.png.stat().st_size > 1000 and f.pdf.stat().st_size > 1000
        assert f.png.read_bytes()[:4] == b"\x89PNG" and f.pdf.read_bytes()[:4] == b"%PDF"
    assert all(files[n].panels == 2 for n in rounds)


def test_figure3_pruning_frequency(tree, tmp_path, monkeypatch):
    """Layer 5 adapter is kept in seed 1 only -> pruned in half the runs; layer 3 is never pruned."""
    import matplotlib.axes

    calls: list[tuple[str, list[float]]] = []
    original = matplotlib.axes.Axes.bar

    def spy(self, x, height, *args, **kwargs):
        calls.append((kwargs.get("label"), [float(h) for h in height]))
        return original(self, x, height, *args, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "bar", spy)
    (fig,) = figure3(collect_runs(tree), tmp_path)
    assert fig.panels == 3
    # panels RTE, SST-2, all tasks; in each, bars of lora then adapter over layers 0..5
    assert [label for label, _ in calls] == ["lora", "adapter"] * 3
    assert calls[1][1] == [1.0, 1.0, 1.0, 0.0, 1.0, 0.5]  # RTE adapter
    assert calls[4][1] == [0.0, 1.0, 1.0, 0.0, 1.0, 1.0]  # all tasks, lora


def test_report_command_figures_flag(tmp_path):
    run = make_run(tmp_path / "runs", "rte/hybrid/s1", command="search", task="rte", seed=1, value=0.7)
    add_search_files(run, {0: ["lora"]})
    cfg = OmegaConf.create({"runs": str(tmp_path / "runs"), "out": str(tmp_path), "tables": ["table2"],
                            "figures": True, "reference_csv": None})
    result = report_run(cfg, tmp_path)
    assert "figure1_minilm_l6" in result["figures"] and (tmp_path / "figures" / "figure3_minilm_l6.pdf").exists()
    assert "figures/rounds/rounds_rte__hybrid__s1.png" in (tmp_path / "report.md").read_text(encoding="utf-8")
