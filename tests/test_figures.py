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


def _real_search_run(root):
    """A search run in the exact formats `prunepeft search` writes (tiny_bert: lora 512, adapter 552 params)."""
    import json

    run = make_run(root, "rte/tiny/s5", command="search", task="rte", seed=5, value=0.6, model="tiny_bert")
    (run / "found_config.json").write_text(json.dumps({
        "num_layers": 4, "search_space": ["lora", "adapter"], "units": ["1:lora", "2:lora", "3:lora"],
        "layers": [{"layer": i, "units": [{"type": "lora", "params": 512}] if i else []} for i in range(4)],
        "params": {"peft": 1536, "percent_of_base": 2.2546}}))
    base = 68128
    rounds = [(1, ["0:adapter", "1:adapter"], 3152), (2, ["0:lora", "3:adapter"], 2088), (3, ["2:adapter"], 1536)]
    (run / "rounds.jsonl").write_text("".join(json.dumps({
        "round": r, "removed": rem, "params_left": left, "percent_left": left / base * 100, "budget": 2000,
        "dev": {"validation": {"accuracy": 0.5 + r / 100}}, "statistics": {}}) + "\n" for r, rem, left in rounds))
    (run / "warmup.json").write_text(json.dumps({
        "tendencies": {"weight": {"b0:lora": 0.9, "b0:adapter": 0.2}, "taylor": {"b0:lora": 0.1, "b0:adapter": 0.8}},
        "assignment": {"b0:lora": "weight", "b0:adapter": "taylor"}, "partition": {"boundaries": [1, 2, 3]}}))
    (run / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in [
        {"phase": "round1", "kind": "step", "step": 1, "loss": 0.7},
        {"phase": "round1", "kind": "eval", "step": 1, "metrics": {"validation": {"accuracy": 0.51}}},
        {"phase": "retrain", "kind": "step", "step": 1, "loss": 0.6},
        {"phase": "retrain", "kind": "eval", "step": 1, "metrics": {"validation": {"accuracy": 0.6}}}]))
    return run


def test_round_plot_starts_at_the_supernet_with_the_budget_line(tmp_path, monkeypatch):
    from prunepeft.run.io import read_jsonl
    from prunepeft.report import figures

    run = _real_search_run(tmp_path / "runs")
    x, pct, budget = figures.round_series(run, read_jsonl(run / "rounds.jsonl"))
    assert x == [0, 1, 2, 3]
    # round 0 = 3,152 left + the two adapters (552 each, solved from round 3's single removal) = 4,256
    assert pct[0] == pytest.approx(4256 / 68128 * 100) and pct[-1] == pytest.approx(1536 / 68128 * 100)
    assert budget == pytest.approx(2000 / 68128 * 100)
    seen = {}
    original = figures._save

    def capture(fig, out_dir, name):
        seen[name] = [(ax.get_ylim(), [list(map(float, ln.get_ydata())) for ln in ax.lines]) for ax in fig.axes]
        return original(fig, out_dir, name)

    monkeypatch.setattr(figures, "_save", capture)
    figures.round_plots(collect_runs(tmp_path / "runs"), tmp_path / "out")
    (params_ax, dev_ax), = seen.values()
    assert params_ax[1][1] == [pytest.approx(budget)] * 2  # the horizontal budget line
    assert dev_ax[0] == (0.0, 1.0)  # accuracy on a fixed 0-1 axis, not autoscaled to 0.51-0.53


def test_new_per_run_figures_and_figure3_legend_clear_of_the_title(tmp_path, monkeypatch):
    from prunepeft.report import figures

    _real_search_run(tmp_path / "runs")
    checks = {}
    original = figures._save

    def capture(fig, out_dir, name):
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        if name.startswith("figure3"):
            title = fig._suptitle.get_window_extent(renderer)
            checks[name] = not any(leg.get_window_extent(renderer).overlaps(title) for leg in fig.legends)
        texts = [t.get_text() for ax in fig.axes for t in ax.texts]
        boxes = [p for ax in fig.axes for p in ax.patches if p.get_edgecolor()[:3] == (1.0, 0.0, 0.0)]
        checks[name + ":texts"], checks[name + ":red"] = texts, len(boxes)
        return original(fig, out_dir, name)

    monkeypatch.setattr(figures, "_save", capture)
    files = {f.name: f for f in build_figures(collect_runs(tmp_path / "runs"), tmp_path / "out")}
    assert checks["figure3_tiny_bert"] is True
    texts = checks["found_rte__tiny__s5:texts"]
    assert texts[:4] == ["r2", "kept\n512", "kept\n512", "kept\n512"] and texts[4:] == ["r1", "r1", "r3", "r2"]
    assert checks["warmup_rte__tiny__s5:red"] == 2  # S_H: one box per partition key
    assert files["curves_rte__tiny__s5"].panels == 2 and files["curves_rte__tiny__s5"].png.stat().st_size > 1000


def test_figure3_counts_a_type_only_where_it_was_a_candidate(tmp_path, monkeypatch):
    """Two runs without DoRA in their search space, one with it: DoRA's pruned fraction is over that one run.

    Counted over all three runs (the old reading), layer 0's DoRA would be 'pruned' in 3 of 3 although two
    runs never had it; over the run that had it, kept at layer 0 and pruned elsewhere: 0.0, then 1.0.
    """
    import matplotlib.axes

    root = tmp_path / "runs"
    for seed in (1, 2):
        run = make_run(root, f"rte/hybrid/s{seed}", command="search", task="rte", seed=seed, value=0.7)
        add_search_files(run, {0: ["lora"], 1: ["adapter"]}, num_layers=3, seed=2)  # seed 2: the search's layout
    dora = make_run(root, "rte/hybrid-dora/s3", command="search", task="rte", seed=3, value=0.7,
                    space=["lora", "dora", "adapter"])
    add_search_files(dora, {0: ["dora"], 1: ["lora"]}, num_layers=3, seed=2, space=["lora", "dora", "adapter"])
    calls: list[tuple[str, list[float]]] = []
    original = matplotlib.axes.Axes.bar

    def spy(self, x, height, *args, **kwargs):
        calls.append((kwargs.get("label"), [float(h) for h in height]))
        return original(self, x, height, *args, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "bar", spy)
    (fig,) = figure3(collect_runs(root), tmp_path / "out")
    bars = dict(calls)
    assert [label for label, _ in calls] == ["lora", "adapter", "dora"]  # one panel (RTE); types in first-seen order
    assert bars["dora"] == [0.0, 1.0, 1.0]  # over the one run that had DoRA, not [1.0, 1.0, 1.0] over three
    assert bars["lora"] == pytest.approx([1 / 3, 2 / 3, 1.0])  # lora: kept at 0 by two runs, at 1 by one
    assert bars["adapter"] == pytest.approx([1.0, 1 / 3, 1.0])


def test_figure3_without_a_recorded_search_space_uses_the_types_the_run_touched(tmp_path, monkeypatch):
    """A run that records no search space: the types it kept or removed are its candidates (never DoRA)."""
    import json

    import matplotlib.axes

    run = make_run(tmp_path / "runs", "rte/old/s1", command="search", task="rte", seed=1, value=0.7)
    add_search_files(run, {0: ["lora"]}, num_layers=2)  # rounds remove 1:lora, 2:lora, 3:lora
    info = json.loads((run / "run.json").read_text())
    del info["config"]["search_space"]
    (run / "run.json").write_text(json.dumps(info))
    dora = make_run(tmp_path / "runs", "rte/dora/s2", command="search", task="rte", seed=2, value=0.7,
                    space=["dora"])
    add_search_files(dora, {1: ["dora"]}, num_layers=2, seed=2, space=["dora"])
    calls = []
    original = matplotlib.axes.Axes.bar
    monkeypatch.setattr(matplotlib.axes.Axes, "bar", lambda self, x, h, *a, **k: (
        calls.append((k.get("label"), [float(v) for v in h])), original(self, x, h, *a, **k))[1])
    figure3(collect_runs(tmp_path / "runs"), tmp_path / "out")
    bars = dict(calls)
    assert bars["lora"] == [0.0, 1.0] and bars["dora"] == [1.0, 0.0]
