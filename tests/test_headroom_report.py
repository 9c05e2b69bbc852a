"""The headroom report (issue 26): the envelope of random configurations per seed, the search arms and baselines
placed in it, and the units the best configurations share, checked by hand on a synthetic tree."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from prunepeft.report import collect_runs
from prunepeft.analysis.headroom import collect_headroom, marker_rows, percentile_in, seed_rows, unit_rows
from prunepeft.report.headroom import build_headroom

T2 = 12.706204736174707  # t(0.975, 1)


def write_run(root: Path, name: str, heldout: float, params: int, units: list[str] | None = None,
              command: str = "baseline") -> None:
    d = root / name
    d.mkdir(parents=True)
    seed = int(name.rpartition("-s")[2])
    (d / "run.json").write_text(json.dumps({"status": "done", "command": command, "config": {"seed": seed}}))
    (d / "summary.json").write_text(json.dumps({
        "command": command, "task": "sst2", "model": "minilm_l6", "method": "found", "seed": seed,
        "primary": {"split": "validation", "metric": "accuracy", "value": heldout - 0.05},
        "metrics": {"validation": {"accuracy": heldout - 0.05}, "train_heldout": {"accuracy": heldout}},
        "params": {"peft": params, "percent": 0.5}}))
    if units is not None:
        (d / "found_config.json").write_text(json.dumps({"units": units}))
    (d / "DONE").write_text("")


@pytest.fixture()
def tree(tmp_path):
    """Two seeds. Seed 1: envelope 0.80, 0.82, 0.84, 0.86 (best holds 5:lora and 0:adapter); seed 2: 0.70,
    0.72, 0.74, 0.76. Markers: hybrid 0.83 / 0.76, uniform LoRA 0.86 / 0.78, masked_loss on seed 1 only."""
    root = tmp_path / "runs" / "headroom"
    env1 = [(0.80, ["0:lora", "1:lora"]), (0.82, ["1:lora", "2:adapter"]), (0.84, ["2:adapter", "5:lora"]),
            (0.86, ["0:adapter", "5:lora"])]
    env2 = [(0.76, ["0:adapter", "3:lora"]), (0.70, ["1:lora", "2:adapter"]), (0.72, ["0:lora", "1:lora"]),
            (0.74, ["2:adapter", "5:lora"])]
    for seed, env in ((1, env1), (2, env2)):
        for j, (v, units) in enumerate(env):
            write_run(root, f"env{j:02d}-s{seed}", v, 100_000 + 1000 * j, units)
    write_run(root, "hybrid-s1", 0.83, 123_776, ["0:adapter", "2:adapter", "5:lora"], "search")
    write_run(root, "hybrid-s2", 0.76, 123_776, ["1:lora"], "search")
    write_run(root, "uniform_lora_eqparams-s1", 0.86, 119_808)
    write_run(root, "uniform_lora_eqparams-s2", 0.78, 119_808)
    write_run(root, "masked_loss-s1", 0.79, 99_000, ["3:lora"], "search")
    return tmp_path / "runs"


def test_percentile_is_the_mid_rank():
    assert percentile_in(0.83, [0.80, 0.82, 0.84, 0.86]) == 50.0
    assert percentile_in(0.86, [0.80, 0.82, 0.84, 0.86]) == 87.5  # tied with the best: half of it counts
    assert percentile_in(0.90, [0.80, 0.82]) == 100.0 and percentile_in(0.10, [0.80, 0.82]) == 0.0


def test_envelope_and_markers_by_hand(tree):
    studies = collect_headroom(collect_runs(tree))
    assert list(studies) == ["headroom"]
    study = studies["headroom"]
    assert sorted(study["markers"]) == ["hybrid", "masked_loss", "uniform_lora_eqparams"]
    rows = seed_rows(study).set_index("seed")
    s1, s2 = rows.loc[1], rows.loc[2]
    assert (s1["n"], s1["best"], s1["worst"]) == (4, pytest.approx(86.0), pytest.approx(80.0))
    assert s1["median"] == pytest.approx(83.0) and s1["q75"] == pytest.approx(84.5) and s1["q25"] == pytest.approx(81.5)
    assert (s1["params_min"], s1["params_max"]) == (100_000, 103_000)
    assert s1["hybrid_pct"] == 50.0 and s1["uniform_lora_eqparams_pct"] == 87.5 and s1["masked_loss_pct"] == 0.0
    assert s2["hybrid_pct"] == 87.5 and s2["uniform_lora_eqparams_pct"] == 100.0
    assert math.isnan(s2["masked_loss"]) or s2["masked_loss"] is None

    markers = marker_rows(study).set_index("arm")
    hyb = markers.loc["hybrid"]
    # Δ to best: seed 1 83 − 86 = −3, seed 2 76 − 76 = 0 -> mean −1.5, half-width t(1) × sd / √2 = T2 × 1.5
    assert hyb["delta_best"][0] == pytest.approx(-1.5) and hyb["delta_best"][1] == pytest.approx(T2 * 1.5)
    assert hyb["delta_median"][0] == pytest.approx(((83 - 83) + (76 - 73)) / 2)
    assert hyb["percentile"] == pytest.approx(68.75) and (hyb["pct_min"], hyb["pct_max"]) == (50.0, 87.5)
    lora = markers.loc["uniform_lora_eqparams"]
    assert lora["delta_best"][0] == pytest.approx(1.0) and lora["value"] == pytest.approx(82.0)
    ml = markers.loc["masked_loss"]
    assert ml["n"] == 1 and ml["delta_best"][0] == pytest.approx(-7.0) and ml["delta_best"][2] == 1
    best = markers.loc["envelope best"]
    assert best["delta_median"][0] == pytest.approx(3.0)  # 86 − 83 and 76 − 73


def test_units_the_best_configurations_share(tree):
    units = unit_rows(collect_headroom(collect_runs(tree))["headroom"]).set_index("unit")
    # 8 draws; the top quarter of 4 is 1 per seed: seed 1's {0:adapter, 5:lora}, seed 2's {0:adapter, 3:lora}
    assert units.loc["0:adapter", "top"] == 1.0 and units.loc["0:adapter", "drawn"] == pytest.approx(2 / 8)
    assert units.loc["5:lora", "top"] == 0.5 and units.loc["5:lora", "drawn"] == pytest.approx(3 / 8)
    assert units.loc["1:lora", "top"] == 0.0 and units.loc["1:lora", "lift"] == pytest.approx(-4 / 8)
    assert list(units.index)[:3] == ["0:adapter", "0:lora", "1:lora"]  # by layer, then type


def test_build_headroom_writes_table_csv_and_figure(tree, tmp_path):
    out = tmp_path / "report"
    markdown = build_headroom(collect_runs(tree), out)
    assert "## Headroom (headroom)" in markdown
    assert "| 1 | 4 | 100.0–103.0 | 86.00 | 84.50 | 83.00 | 81.50 | 80.00 | 83.00 (50) | 79.00 (0) | 86.00 (88) |" in markdown
    assert "| hybrid | 2 | 69 (50–88) | 79.50 | -1.50 ± 19.06 (n=2) | +1.50 ± 19.06 (n=2) |" in markdown
    assert "| masked_loss | 1 | 0 (0–0) | 79.00 | -7.00 (n=1) | -4.00 (n=1) |" in markdown
    assert "| envelope best | 2 | — | 81.00 | — | +3.00 ± 0.00 (n=2) |" in markdown
    assert (out / "figures" / "headroom.png").stat().st_size > 0
    assert (out / "headroom.md").read_text().startswith("## Headroom")
    assert (out / "headroom.csv").read_text().splitlines()[0].startswith("folder,seed,n,")
    assert build_headroom(collect_runs(tree / "headroom" / "hybrid-s1"), tmp_path / "none") == ""


def test_the_report_command_includes_headroom(tree, tmp_path, compose_cfg):
    from prunepeft.commands import report

    out = tmp_path / "rep"
    cfg = compose_cfg("report", [f"runs={tree}", f"out={out}", "figures=false"])
    result = report.run(cfg, out)
    assert "headroom" in result["tables"]
    assert "## Headroom" in (out / "report.md").read_text()


def test_a_seed_with_a_short_envelope_is_listed_but_not_pooled(tree, tmp_path):
    root = tree / "headroom"
    for j, v in enumerate((0.60, 0.62)):  # seed 3: 2 of the others' 4 draws, its hybrid far above them
        write_run(root, f"env{j:02d}-s3", v, 100_000, ["0:lora"])
    write_run(root, "hybrid-s3", 0.99, 123_776, ["0:lora"], "search")
    study = collect_headroom(collect_runs(tree))["headroom"]
    from prunepeft.analysis.headroom import partial_seeds

    assert partial_seeds(study) == {3: 2}
    assert list(seed_rows(study)["seed"]) == [1, 2, 3]  # listed
    hybrid = marker_rows(study).set_index("arm").loc["hybrid"]
    assert hybrid["n"] == 2 and hybrid["value"] == pytest.approx((83.0 + 76.0) / 2)  # seeds 1 and 2 only
    md = build_headroom(collect_runs(tree), tmp_path / "out")
    assert "Not pooled across seeds (an envelope still short of the largest, N = 4): seed 3 (2 draws)." in md
