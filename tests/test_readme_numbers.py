"""The README's newest numbers, recomputed from the committed runs they quote.

Each paragraph names the runs it was written from (e.g. "9 of the 16" envelope draws of seed 1), so the
test recomputes exactly those: runs committed later do not break it, and a number edited by hand does.
"""
from __future__ import annotations

import json
import statistics
from pathlib import Path

import pytest

from prunepeft.run import outputs

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
README = (ROOT / "README.md").read_text()


def _heldout(run: Path) -> float:
    return 100 * json.loads((run / outputs.SUMMARY).read_text())["metrics"]["train_heldout"]["accuracy"]


def _dev(run: Path) -> float:
    return json.loads((run / outputs.SUMMARY).read_text())["primary"]["value"]


def _headroom(seeds: tuple[int, ...]) -> dict:
    """The headroom study as `prunepeft report` computes it (prunepeft.analysis.headroom), restricted to the
    seeds a paragraph quotes (runs committed later do not change it)."""
    from prunepeft.analysis.headroom import collect_headroom
    from prunepeft.report import collect_runs

    study = collect_headroom(collect_runs(RESULTS / "headroom"))[""]
    return {"envelope": {s: d for s, d in study["envelope"].items() if s in seeds},
            "markers": {m: {s: v for s, v in by.items() if s in seeds} for m, by in study["markers"].items()}}


def test_headroom_paragraph():
    from benchmarks.lib.headroom import verdicts
    from prunepeft.analysis.headroom import marker_rows, seed_rows, unit_rows

    seeds = (1, 2, 3)  # "3 seeds"
    study = _headroom(seeds)
    text = " ".join(README.split())
    rows = seed_rows(study).set_index("seed")
    assert list(rows["n"]) == [16, 16, 16]
    for s in seeds:
        r = rows.loc[s]
        assert f"seed {s} {r['worst']:.2f}–{r['best']:.2f} % (median {r['median']:.2f} %)" in text
    spans = [f"{rows.loc[s, 'best'] - rows.loc[s, 'worst']:.2f}" for s in seeds]
    assert f"the envelopes span {', '.join(spans[:-1])} and {spans[-1]} points" in text

    def pct(arm: str) -> str:  # "91st, 75th and 59th": the arm's percentile in seeds 1, 2 and 3's envelopes
        def nth(v: float) -> str:
            n = int(round(v))
            return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"
        values = [nth(rows.loc[s, arm + "_pct"]) for s in seeds]
        return f"{', '.join(values[:-1])} and {values[-1]}"

    assert f"Uniform LoRA at equal parameters sits at the {pct('uniform_lora_eqparams')} percentiles" in text
    assert f"lands at the {pct('masked_loss')} percentiles" in text
    assert f"hybrid at the {pct('hybrid')};" in text
    assert f"equal parameters at the {pct('uniform_adapter_eqparams')}." in text
    markers = marker_rows(study).set_index("arm")
    ci = lambda d: f"{d[0]:+.2f} ± {d[1]:.2f}".replace("-", "−")  # noqa: E731
    lora = markers.loc["uniform_lora_eqparams"]
    assert f"{ci(lora['delta_median'])} points above the envelope's median and {ci(lora['delta_best'])[1:]} below its best" \
        in text
    lines = verdicts(study)
    h1, h3 = lines[0], lines[-1]
    assert h1.startswith("H1 headroom above uniform LoRA: no headroom detected")
    assert "replicated tops: top_s2 at seed 3 − LoRA -0.32; top_s3 at seed 2 − LoRA +0.20" in h1
    assert "lands 0.32 points below and 0.20 above that seed's uniform LoRA" in text
    assert "masked_loss − LoRA -0.38 ± 1.32 (95 %, n=3)" in h3 and "level with uniform LoRA (−0.38 ± 1.32, 95 %, n = 3)" in text
    assert "no headroom a criterion can find" in h3 and "detects ≥ 1.9 points" in h3 and "about 1.9 points or more" in text
    assert all(list(study["markers"]["hybrid_masked_loss"][s]) == list(study["markers"]["hybrid"][s]) for s in seeds)
    units = unit_rows(study).set_index("unit")
    assert units.loc["5:lora", "top"] == 1.0 and round(units.loc["5:lora", "drawn"], 2) == 0.35  # "a third"
    assert "every draw in a seed's top quarter holds `5:lora` (a third of all draws do)" in text


def test_equal_compute_paragraph():
    here = RESULTS / "equal_compute"
    warm, lora = here / "hybrid_warm-s1", here / "lora_equal_compute-s1"
    text = (f"the warm start reached {_heldout(warm):.2f} % held-out and equal-compute LoRA {_heldout(lora):.2f} %")
    assert text in " ".join(README.split())
    cost = json.loads((warm / outputs.SUMMARY).read_text())["cost"]["examples"]
    trained = json.loads((lora / outputs.SUMMARY).read_text())["train"]["examples_seen"]
    assert (trained, cost["search_trained"] + cost["retrain_trained"]) == (6000, 6560)  # "about 6,000–6,600"
    from prunepeft.analysis.stats import mean_ci

    diffs = [_heldout(here / f"hybrid_warm-s{s}") - _heldout(here / f"lora_equal_compute-s{s}") for s in (1, 2)]
    mean, half, n = mean_ci(diffs)  # "over seeds 1–2"
    signed = f"{mean:+.2f}".replace("-", "−")
    assert f"warm − equal-compute LoRA is {signed} ± {half:.2f} points (paired, 95 %, n = {n})" in " ".join(README.split())


def _table2_baselines(task: str) -> list:
    """Table 2's four uniform baselines of seed 1 (FFT, adapter, LoRA, DoRA at the table's budget; not the
    equal-parameters or equal-compute LoRA rows, which sit beside them as `lora-equal_*-from_none`)."""
    base = RESULTS / "tables_cpu" / task / "minilm_l6" / "baseline"
    return [r for m in ("fft", "adapter", "lora", "dora") for r in sorted((base / f"{m}-from_none").glob("*-s1"))]


@pytest.mark.parametrize("task, low, high", [("sst2", "77.8", "80.8"), ("rte", "53.8", "56.7")])
def test_cpu_table_baselines_paragraph(task, low, high):
    values = [100 * _dev(r) for r in _table2_baselines(task)]
    assert len(values) == 4  # FFT, adapter, LoRA, DoRA
    assert (f"{min(values):.1f}", f"{max(values):.1f}") == (low, high)
    assert f"{low}–{high} %" in README


def test_cpu_table_stsb_learned_only_with_full_fine_tuning_while_heads_started_at_0():
    """The STS-B runs made before regression heads started at the labels' mean (kept in head_bias/zero), and the
    probe that found the cause (cpu_recipe/bias: LoRA, the same seed and cost, the bias at the mean)."""
    base = RESULTS / "head_bias" / "zero" / "stsb" / "minilm_l6" / "baseline"
    fft = 100 * _dev(next((base / "fft-from_none").glob("*-s1")))
    peft = {m: 100 * _dev(next((base / f"{m}-from_none").glob("*-s1"))) for m in ("adapter", "lora", "dora")}
    text = " ".join(README.split())
    assert f"Pearson {fft:.1f} against {min(peft.values()):.1f} to {max(peft.values()):.1f}".replace("-", "−") in text
    probe = 100 * _dev(next((RESULTS / "cpu_recipe" / "bias" / "stsb" / "minilm_l6" / "baseline" / "lora-from_none").glob("*-s1")))
    assert f"uniform LoRA {peft['lora']:.1f} → {probe:.1f} at the same cost" in text


def test_cpu_table_cola_is_majority_class():
    runs = _table2_baselines("cola")
    assert len(runs) == 4 and all(_dev(r) == 0.0 for r in runs)
    assert "CoLA (Matthews correlation 0.0 for all four" in " ".join(README.split())


def test_cpu_table_sst2_column_paragraph():
    """"The SST-2 column at scale=cpu, seed 1": every number from the seed-1 runs the committed tables are built
    from (benchmarks/results/tables_cpu, read as `prunepeft report` reads them; later seeds do not change it)."""
    import math

    from prunepeft.report.collect import collect_runs

    runs = collect_runs(RESULTS / "tables_cpu")
    seed1 = runs[runs["complete"] & (runs["task"] == "sst2") & (runs["model"] == "minilm_l6") & (runs["seed"] == 1)]
    assert seed1["label"].is_unique  # one run per row at seed 1
    by_label = seed1.set_index("label")
    text = " ".join(README.split())

    def at(label: str) -> str:
        return f"{100 * by_label.loc[label, 'value']:.1f} %"

    singles = {label.removeprefix("Single: "): 100 * v for label, v in by_label["value"].items()
               if label.startswith("Single: ")}
    assert len(singles) == 6
    best = max(singles, key=singles.get)
    expected = [
        f"PrunePEFT {at('PrunePEFT')}, its low-fidelity search {at('PrunePEFT (low fidelity)')}",
        f"uniform LoRA {at('LoRA')} at the table's budget and {at('LoRA, equal parameters')} at",
        f"adapter {at('Adapter')}, DoRA {at('DoRA')}, FFT {at('FFT')}",
        f"random pruning {at('Random pruning')}, type-matched random {at('Random, type-matched')}, "
        f"no partition {at('No partition')}, the best single criterion on SST-2 ({best}) {singles[best]:.1f} %",
        f"(9 epochs, \"LoRA, equal compute\") reaches {at('LoRA, equal compute')}",
        f"strategy transfer from RTE {at('Strategy transfer from RTE')} and from CoLA "
        f"{at('Strategy transfer from CoLA')}, architecture transfer from RTE "
        f"{at('Architecture transfer from RTE')} and from CoLA {at('Architecture transfer from CoLA')}",
        f"PrunePEFT retrained from the search's trained units (warm retrain) {at('PrunePEFT, warm retrain')}",
    ]
    missing = [e for e in expected if e not in text]
    assert not missing, missing
    rows = ["FFT", "Adapter", "LoRA", "LoRA, equal parameters", "DoRA", "PrunePEFT", "PrunePEFT (low fidelity)",
            "No pruning", "Random pruning", "Random, type-matched", "No partition"]  # Tables 2 and 5, as quoted
    spread = [*(100 * by_label.loc[r, "value"] for r in rows), singles[best]]
    assert f"within {max(spread) - min(spread):.1f} points" in text
    half = 100 * 1.96 * math.sqrt(0.79 * 0.21 / 872)  # a binomial accuracy's 95 % half-width on SST-2's dev rows
    assert f"±{half:.1f} points (95 %)" in text
    hybrid = by_label.loc["PrunePEFT"]
    assert f"The search costs {hybrid['cost_search_s'] / hybrid['cost_retrain_s']:.1f} × its retrain" in text
    lora = json.loads((RESULTS / "tables_cpu" / "sst2" / "minilm_l6" / "baseline" / "lora-equal_compute-from_none"
                       / "lr0.001-5e-05-s1" / outputs.SUMMARY).read_text())
    assert lora["train"]["epochs"] == 9


def test_cells_at_chance_sentence():
    """README: "every RTE and CoLA cell at seed 1" is marked † in the committed tables (and an SST-2 cell never)."""
    import pandas as pd

    assert "every RTE and CoLA cell at seed 1" in " ".join(README.split())
    cells = pd.concat([pd.read_csv(ROOT / "reports" / "tables_cpu" / f"table{t}.csv") for t in (2, 5, 6)])
    cells = cells[cells["model"] == "minilm_l6"]
    rte_cola = cells[cells["column"].isin(["RTE", "CoLA"]) & (cells["n"] > 0)]
    assert len(rte_cola) >= 14 and rte_cola["at_chance"].all()
    assert not cells[(cells["column"] == "SST-2") & (cells["n"] > 0)]["at_chance"].any()


def test_claims_sentence_and_head_bias_reading():
    """README's claims sentence from reports/tables_cpu/claims.txt (itself rebuilt from the runs by
    test_committed_tables); BENCHMARKS §16's reading from the same runs as its rebuilt table."""
    import re

    from benchmarks.lib.head_bias import TABLES, pearson_by_label

    claims = (ROOT / "reports" / "tables_cpu" / "claims.txt").read_text(encoding="utf-8").splitlines()
    text = " ".join(README.split())

    def interval(prefix: str) -> tuple[str, str, str, str]:
        line = next(l for l in claims if l.startswith(prefix))
        m = re.search(r"([+-]\d+\.\d+) points, 95 % \[([+-]\d+\.\d+), ([+-]\d+\.\d+)\], n=(\d+) pairs", line)
        return tuple(x.replace("-", "−") for x in m.groups())

    mean, low, high, n = interval("(a') ")
    assert f"(a′) {mean} points, 95 % [{low}, {high}] over {n} pairs" in text
    mean, low, high, n = interval("(b) hybrid > type-matched")
    assert f"(b) {mean}, 95 % [{low}, {high}] over {n}" in text
    d = next(l for l in claims if l.startswith("(d) "))
    median, runs = re.search(r"median search/retrain (\d+\.\d+), max \d+\.\d+, n=(\d+) runs", d).groups()
    assert "(d) search ≤ 0.3 × retrain, wall-clock: not met" in d and f"(median search/retrain {median} over {runs} runs)" in text
    verdicts = [l for l in claims if l.startswith(("(a)", "(a')", "(b)", "(c)"))]
    assert len(verdicts) == 5 and all(": undecided" in l for l in verdicts)  # "none of (a)–(c) is decided"

    pearson = pearson_by_label(TABLES)
    uniform = [pearson[k] for k in ("LoRA", "DoRA", "LoRA, equal parameters")]
    transfers = [v for k, v in pearson.items() if "transfer" in k]
    bench = " ".join((ROOT / "BENCHMARKS.md").read_text(encoding="utf-8").split())
    assert (f"uniform methods at {min(uniform):.1f}–{max(uniform):.1f} (LoRA, DoRA, LoRA at PrunePEFT's parameter "
            f"count) stand above PrunePEFT's {pearson['PrunePEFT']:.1f} and its transfers "
            f"({min(transfers):.1f}–{max(transfers):.1f})") in bench
