"""Results at chance (prunepeft/report/chance.py): the bound by hand, the split statistics against the GLUE
parquet files, the tables' † mark (never ranked), and the claims' reading without chance-level pairs."""
from __future__ import annotations

import math

import pandas as pd
import pytest
from benchmarks.lib import paper_claims as claims_mod
from report_fixtures import make_run

from prunepeft.report.chance import VALIDATION, at_chance, chance_bound
from prunepeft.report.collect import collect_runs
from prunepeft.report.render import to_csv, to_latex, to_markdown
from prunepeft.report.tables import build_tables


def test_validation_statistics_match_the_glue_parquet_files(glue_dir):
    for task, (size, majority) in VALIDATION.items():
        labels = pd.read_parquet(glue_dir / task / "validation.parquet")["label"]
        assert len(labels) == size, task
        if majority is None:
            assert labels.dtype.kind == "f", task  # regression: no majority class
        else:
            assert labels.value_counts(normalize=True).max() == pytest.approx(majority, abs=5e-5), task


def test_bound_by_hand():
    # RTE accuracy: 0.5271 + 1.96 √(0.5271 · 0.4729 / 277) = 0.5271 + 1.96 · 0.029998
    assert chance_bound("rte", "accuracy") == pytest.approx(0.585896, abs=1e-5)
    # a 100-example eval subset widens the range: 0.5271 + 1.96 · 0.049926
    assert chance_bound("rte", "accuracy", eval_subset="100") == pytest.approx(0.624955, abs=1e-5)
    assert chance_bound("rte", "accuracy", eval_subset=5000) == chance_bound("rte", "accuracy")  # n ≤ the split
    # correlations: 1.96 / √n
    assert chance_bound("cola", "mcc") == pytest.approx(1.96 / math.sqrt(1043))
    assert chance_bound("stsb", "pearson") == pytest.approx(0.050606, abs=1e-6)
    # unknown: another split, a metric without a no-signal level here, a task without checked statistics
    assert chance_bound("rte", "accuracy", split="heldout") is None
    assert chance_bound("stsb", "accuracy") is None
    assert chance_bound("mrpc", "accuracy") is None
    assert chance_bound("sst2", "f1") is None


def test_at_chance_is_strictly_below_the_bound():
    assert at_chance(0.58, 0.5859) and not at_chance(0.5859, 0.5859) and not at_chance(0.60, 0.5859)
    assert not at_chance(0.0, None) and not at_chance(float("nan"), 0.5)


def _md_row(md: str, method: str) -> str:
    return next(line for line in md.splitlines() if line.startswith(f"| minilm_l6 | {method} |"))


def test_a_cell_at_chance_is_marked_and_never_ranked(tmp_path):
    # SST-2 (bound 54.24 on 872 examples): FFT 54.0 is at chance; LoRA 60.0 is not. Ranked without the mark,
    # FFT would be "second"; with it, LoRA is the only ranked value and a lone value is never marked.
    make_run(tmp_path, "sst2/fft", command="baseline", method="fft", task="sst2", seed=1, value=0.54)
    make_run(tmp_path, "sst2/lora", command="baseline", method="lora", task="sst2", seed=1, value=0.60)
    # the same 58.0 on RTE's full dev split (bound 58.59) is at chance...
    make_run(tmp_path, "rte/fft", command="baseline", method="fft", task="rte", seed=1, value=0.58)
    make_run(tmp_path, "rte/lora", command="baseline", method="lora", task="rte", seed=1, value=0.60)
    make_run(tmp_path, "rte/dora", command="baseline", method="dora", task="rte", seed=1, value=0.62)
    (t2,) = build_tables(collect_runs(tmp_path), ["table2"])
    md = to_markdown(t2)
    assert _md_row(md, "FFT").startswith("| minilm_l6 | FFT | 58.0 (n=1) † | 86.6 | -28.6 | 54.0 (n=1) † |")
    assert _md_row(md, "LoRA").startswith("| minilm_l6 | LoRA | <u>60.0 (n=1)</u> | 84.0 | -24.0 | 60.0 (n=1) |")
    assert _md_row(md, "DoRA").startswith("| minilm_l6 | DoRA | **62.0 (n=1)** |")
    assert "† = at chance" in t2.legend
    assert "58.0 {\\scriptsize (1)}$^\\dagger$" in to_latex(t2) and "$^\\dagger$ = at chance" in to_latex(t2)
    rows = {(r.method, r.column): r.at_chance for r in pd.read_csv(__import__("io").StringIO(to_csv(t2))).itertuples()}
    assert rows[("FFT", "SST-2")] and rows[("FFT", "RTE")] and not rows[("LoRA", "SST-2")] and not rows[("DoRA", "RTE")]


def test_an_eval_subset_widens_the_range(tmp_path):
    # 58.0 on RTE is at chance on 277 examples (bound 58.59) and on 100 (62.50); 60.0 only on 100
    for name, subset in (("full", None), ("sub", 100)):
        make_run(tmp_path / name, "rte/lora", command="baseline", method="lora", task="rte", seed=1, value=0.60,
                 config_over={"data": {"eval_subset": subset}})
    full, = build_tables(collect_runs(tmp_path / "full"), ["table2"])
    sub, = build_tables(collect_runs(tmp_path / "sub"), ["table2"])
    assert "60.0 (n=1) |" in _md_row(to_markdown(full), "LoRA") and "†" not in _md_row(to_markdown(full), "LoRA")
    assert "60.0 (n=1) † |" in _md_row(to_markdown(sub), "LoRA")
    assert "† = at chance" not in full.legend  # the legend explains the mark only where one is shown


def test_claims_print_the_reading_without_chance_level_pairs(tmp_path, capsys):
    # SST-2 pairs learn (hybrid − LoRA = +1, +2, +4); CoLA accuracy 69.0 on both arms is under CoLA's bound
    # (71.9): three pairs of 0 that say nothing.
    for seed, (h, l) in enumerate(((0.80, 0.79), (0.82, 0.80), (0.84, 0.80)), start=1):
        make_run(tmp_path, f"sst2/hybrid-s{seed}", command="search", task="sst2", seed=seed, value=h)
        make_run(tmp_path, f"sst2/lora-s{seed}", command="baseline", method="lora", task="sst2", seed=seed, value=l)
        make_run(tmp_path, f"cola/hybrid-s{seed}", command="search", task="cola", seed=seed, value=0.69)
        make_run(tmp_path, f"cola/lora-s{seed}", command="baseline", method="lora", task="cola", seed=seed, value=0.69)
    assert claims_mod.main([f"runs={tmp_path}"]) == 0
    lines = capsys.readouterr().out.splitlines()
    a = lines.index(next(l for l in lines if l.startswith("(a) ")))
    # 6 pairs {1, 2, 4, 0, 0, 0}: mean 1.167, sd 1.602, half 2.5706 · 1.602 / √6 = 1.681 -> non-inferior
    assert lines[a].startswith("(a) PrunePEFT ≥ the best uniform PEFT at equal budget: supported — hybrid − lora "
                               "+1.17 points, 95 % [-0.51, +2.85], n=6 pairs")
    # 3 pairs {1, 2, 4}: mean 2.333, sd 1.528, half 4.3027 · 1.528 / √3 = 3.795: the lower end -1.46 < -1;
    # detectable 3.795 · 2.8 / 1.96 = 5.42
    assert lines[a + 1] == ("    without the 3 pair(s) where both arms are at chance (sensitivity, not the "
                            "pre-registered verdict): undecided — hybrid − lora +2.33 points, 95 % [-1.46, +6.13], "
                            "n=3 pairs (detectable ≥ 5.4 points); the verdicts differ: the pre-registered one "
                            "(supported) rests on chance-level pairs")
    # no pair at chance: no second line
    assert not lines[a + 2].startswith("    ")


def test_a_pair_with_one_arm_at_chance_is_kept(tmp_path, capsys):
    """Only pairs where BOTH arms are at chance are left out: on RTE hybrid 57.0 is at chance (bound 58.59) but
    LoRA 60.0 is not, so hybrid's failure to learn counts against it. The same for (a'), equal parameters."""
    values = {("sst2", 1): (0.80, 0.79), ("sst2", 2): (0.82, 0.80), ("sst2", 3): (0.84, 0.80),  # +1, +2, +4
              ("cola", 1): (0.69, 0.69), ("cola", 2): (0.69, 0.69), ("cola", 3): (0.69, 0.69),  # both at chance
              ("rte", 1): (0.57, 0.60)}  # -3: one arm at chance
    for (task, seed), (h, l) in values.items():
        make_run(tmp_path, f"{task}/hybrid-s{seed}", command="search", task=task, seed=seed, value=h)
        make_run(tmp_path, f"{task}/lora-s{seed}", command="baseline", method="lora", task=task, seed=seed, value=l)
        make_run(tmp_path, f"{task}/lora-eq-s{seed}", command="baseline", method="lora", task=task, seed=seed, value=l,
                 config_over={"budget": {"params": 170000}})  # sized to hybrid's 170,000 found parameters
    assert claims_mod.main([f"runs={tmp_path}"]) == 0
    lines = capsys.readouterr().out.splitlines()
    for claim in ("(a) ", "(a') "):
        i = lines.index(next(l for l in lines if l.startswith(claim)))
        # 7 pairs {1, 2, 4, 0, 0, 0, -3}: mean 0.571, sd 2.149, half 2.4469 · 2.149 / √7 = 1.988
        assert "+0.57 points, 95 % [-1.42, +2.56], n=7 pairs" in lines[i]
        # 4 pairs {1, 2, 4, -3}: mean 1, sd 2.944, half 3.1824 · 2.944 / 2 = 4.684; detectable 4.684 · 2.8 / 1.96
        assert lines[i + 1].startswith("    without the 3 pair(s) where both arms are at chance")
        assert lines[i + 1].endswith("+1.00 points, 95 % [-3.68, +5.68], n=4 pairs (detectable ≥ 6.7 points)")


def test_eval_subset_forms_and_negative_correlations():
    from prunepeft.report.chance import eval_rows

    assert eval_rows(None, 277) == eval_rows("null", 277) == eval_rows("1", 277) == eval_rows(1.0, 277) == 277
    assert eval_rows("0.5", 277) == 138 and eval_rows("100", 277) == 100 and eval_rows("1e+06", 277) == 277
    assert eval_rows("0.001", 277) is None and eval_rows("all", 277) is None
    assert chance_bound("rte", "accuracy", eval_subset="0.5") == pytest.approx(0.5271 + 1.96 * math.sqrt(
        0.5271 * 0.4729 / 138))
    assert chance_bound("rte", "accuracy", eval_subset="all") is None  # unreadable: never marked
    # a correlation is at chance inside ±1.96/√n: clearly below 0 is a signal (a wrong one), not chance
    bound = chance_bound("stsb", "pearson")
    assert at_chance(-0.04, bound, "pearson") and not at_chance(-0.06, bound, "pearson")
    assert at_chance(-0.06, chance_bound("rte", "accuracy"), "accuracy")  # accuracy: anything below the bound


def test_avg_and_paired_differences_carry_the_mark(tmp_path):
    # CoLA: both FFT and PrunePEFT at chance (MCC-like accuracy under 71.9); SST-2: both learn
    for method, cola, sst2 in (("fft", 0.69, 0.80), (None, 0.69, 0.78)):
        command = "baseline" if method else "search"
        make_run(tmp_path, f"cola/{command}", command=command, method=method, task="cola", seed=1, value=cola)
        make_run(tmp_path, f"sst2/{command}", command=command, method=method, task="sst2", seed=1, value=sst2)
    make_run(tmp_path, "sst2/lora", command="baseline", method="lora", task="sst2", seed=1, value=0.79)
    make_run(tmp_path, "cola/lora", command="baseline", method="lora", task="cola", seed=1, value=0.75)
    (t2,) = build_tables(collect_runs(tmp_path), ["table2"])
    md = to_markdown(t2)
    # FFT's Avg includes a † cell: † and unranked; LoRA's (CoLA 75.0 learned) is the only ranked Avg
    assert "| 74.5 † |" in _md_row(md, "FFT")
    assert "| 77.0 |" in _md_row(md, "LoRA")
    delta_rows = md.split("Paired per-seed difference")[1]
    fft = next(l for l in delta_rows.splitlines() if l.startswith("| minilm_l6 | FFT |"))
    lora = next(l for l in delta_rows.splitlines() if l.startswith("| minilm_l6 | LoRA |"))
    assert fft == "| minilm_l6 | FFT | +0.0 (n=1) † | +2.0 (n=1) |"
    assert lora == "| minilm_l6 | LoRA | +6.0 (n=1) | +1.0 (n=1) |"  # one side learned: no mark
