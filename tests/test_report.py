"""Golden tests of `prunepeft report`: a synthetic tree of run outputs -> exact tables.

The tree (see `golden_tree`) has two seeds per cell, a learning-rate sweep, a missing cell, an
unfinished run with an absurd score, ablations, transfers and a decoder model; every expected
number below was computed by hand from it (metric ×100, sample std, per-seed differences).
"""
from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf
from report_fixtures import make_run

from prunepeft.commands.report import run as report_run
from prunepeft.errors import UserError
from prunepeft.report import build_tables, collect_runs, load_reference, to_csv, to_latex, to_markdown
from prunepeft.run.markdown import md_table

REPO = Path(__file__).resolve().parents[1]


def golden_tree(root: Path) -> Path:
    """Runs in the formats the search/baseline commands write (values are fractions)."""
    B, S = "baseline", "search"
    for seed, (rte, sst) in {1: (0.70, 0.90), 2: (0.72, 0.92)}.items():
        make_run(root, f"b/rte/fft/s{seed}", command=B, method="fft", task="rte", seed=seed, value=rte, percent=100.0)
        make_run(root, f"b/sst2/fft/s{seed}", command=B, method="fft", task="sst2", seed=seed, value=sst, percent=100.0)
    for seed, v in {1: 0.66, 2: 0.68}.items():  # lr sweep: 1e-3 wins on RTE (67.0 vs 61.0)
        make_run(root, f"b/rte/lora/lr1e-3/s{seed}", command=B, method="lora", task="rte", seed=seed, value=v,
                 percent=0.76)
    for seed, v in {1: 0.60, 2: 0.62}.items():
        make_run(root, f"b/rte/lora/lr5e-4/s{seed}", command=B, method="lora", task="rte", seed=seed, value=v, lr=5e-4,
                 percent=0.76)
    make_run(root, "b/sst2/lora/s1", command=B, method="lora", task="sst2", seed=1, value=0.91, percent=0.76)
    make_run(root, "b/rte/adapter/s1", command=B, method="adapter", task="rte", seed=1, value=0.65, percent=0.74)
    for seed, (rte, sst) in {1: (0.71, 0.93), 2: (0.69, 0.91)}.items():
        make_run(root, f"s/rte/hybrid/s{seed}", command=S, task="rte", seed=seed, value=rte, search_wall=100.0 * seed)
        make_run(root, f"s/sst2/hybrid/s{seed}", command=S, task="sst2", seed=seed, value=sst)
    make_run(root, "s/rte/hybrid-low/s1", command=S, task="rte", seed=1, value=0.68, fidelity="low", percent=0.70,
             search_wall=20.0)
    make_run(root, "s/rte/hybrid/s3", command=S, task="rte", seed=3, value=0.99, done=False)  # unfinished: ignored
    for strategy, crit, vals in (("none", None, (0.64, 0.66)), ("random", None, (0.62, 0.60)),
                                 ("single", "taylor", (0.67, 0.69)), ("single", "weight", (0.63,)),
                                 ("hybrid_no_partition", None, (0.70, 0.68))):
        for seed, v in enumerate(vals, start=1):
            make_run(root, f"s/rte/{strategy}-{crit}/s{seed}", command=S, task="rte", seed=seed, value=v,
                     strategy=strategy, criterion=crit)
    for seed, v in {1: 0.92, 2: 0.90}.items():
        make_run(root, f"s/sst2/from-rte/s{seed}", command=S, task="sst2", seed=seed, value=v,
                 transfer={"kind": "strategy", "from_task": "rte"})
    make_run(root, "b/sst2/found-rte/s1", command=B, method="found", task="sst2", seed=1, value=0.89,
             transfer={"kind": "architecture", "from_task": "rte"})
    make_run(root, "b/rte/llama-lora/s1", command=B, method="lora", task="rte", seed=1, value=0.55,
             model="tiny_llama", family="llama", percent=0.8)
    make_run(root, "s/rte/llama/s1", command=S, task="rte", seed=1, value=0.57, model="tiny_llama", family="llama")
    return root


# Beside each of our cells: the paper's number (paper_reference.csv, RoBERTa-large) and Δ = ours − paper,
# by hand: FFT RTE 71.0 − 86.6 = −15.6, SST-2 91.0 − 96.4 = −5.4, Params 100.00 − 100 = +0.00; Adapter
# RTE 65.0 − 83.8 = −18.8 (no SST-2 run: the paper's 96.1 with no Δ), Params 0.74 − 2 = −1.26; LoRA
# 67.0 − 84.0, 91.0 − 96.0, 0.76 − 1; PrunePEFT 70.0 − 85.5, 92.0 − 96.6, 0.75 − 1; low fidelity
# 68.0 − 85.0, 0.70 − 1. The paper's Avg (7 tasks) is not beside ours (2 tasks).
TABLE2_MD = """\
## Table 2 — PrunePEFT vs baselines on GLUE

| Model | Method | RTE | RTE paper | RTE Δ | SST-2 | SST-2 paper | SST-2 Δ | Avg | Params (%) | Params (%) paper \
| Params (%) Δ |
|:--|:--|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|
| minilm_l6 | FFT | **71.0 ± 1.4 (n=2)** | 86.6 | -15.6 | <u>91.0 ± 1.4 (n=2)</u> | 96.4 | -5.4 | **81.0** | 100.00 | \
100 | +0.00 |
| minilm_l6 | Adapter | 65.0 (n=1) | 83.8 | -18.8 | — | 96.1 | — | — | 0.74 | 2 | -1.26 |
| minilm_l6 | LoRA | 67.0 ± 1.4 (n=2) | 84.0 | -17.0 | <u>91.0 (n=1)</u> | 96.0 | -5.0 | <u>79.0</u> | 0.76 | 1 | -0.24 |
| minilm_l6 | PrunePEFT | <u>70.0 ± 1.4 (n=2)</u> | 85.5 | -15.5 | **92.0 ± 1.4 (n=2)** | 96.6 | -4.6 | **81.0** | 0.75 | \
1 | -0.25 |
| minilm_l6 | PrunePEFT (low fidelity) | 68.0 (n=1) | 85.0 | -17.0 | — | 96.3 | — | — | 0.70 | 1 | -0.30 |

Cells: dev-set metric ×100 (last epoch), mean ± sd (sample standard deviation over seeds), n = seeds in that cell; \
Avg = mean of the task means (rows with every task); Params = mean % of the base model over the row's runs; \
**best**, <u>second</u> per column and model; — = no finished run. paper = the number arXiv 2506.07587 \
(RoBERTa-large) reports for the row's method beside each of our columns it has (a single run on the paper's \
backbone, not measured here, never ranked or averaged with ours; — where it reports none); Δ = ours − paper, in \
points (Params: percentage points).

Paired per-seed difference to PrunePEFT (row − PrunePEFT, same model, task and seed; mean ± sd over shared seeds, \
n = pairs):

| Model | Method | RTE | SST-2 |
|:--|:--|--:|--:|
| minilm_l6 | FFT | +1.0 ± 2.8 (n=2) | -1.0 ± 2.8 (n=2) |
| minilm_l6 | Adapter | -6.0 (n=1) | — |
| minilm_l6 | LoRA | -3.0 ± 2.8 (n=2) | -2.0 (n=1) |
| minilm_l6 | PrunePEFT (low fidelity) | -3.0 (n=1) | — |

- Learning rate chosen per (method, task) by the best mean dev metric over seeds, as the paper tuned it per task \
(the dev split is also the one reported): minilm_l6 LoRA on RTE: lr 0.001 (of 0.0005, 0.001).
- The paper's Avg is over other tasks (MNLI, QNLI, QQP, RTE, SST-2, MRPC, CoLA) than ours (RTE, SST-2): not beside \
ours.
"""

TABLE2_CSV = """\
table,model,method,column,mean,std,n,seeds,mark,at_chance,delta_mean,delta_std,delta_n,paper,delta_paper
table2,minilm_l6,FFT,RTE,71.0,1.4142,2,1;2,best,False,1.0,2.8284,2,86.6,-15.6
table2,minilm_l6,FFT,SST-2,91.0,1.4142,2,1;2,second,False,-1.0,2.8284,2,96.4,-5.4
table2,minilm_l6,FFT,Avg,81.0,,2,,best,False,,,0,,
table2,minilm_l6,FFT,Params (%),100.0,0.0,4,,,False,,,0,100,0.0
table2,minilm_l6,Adapter,RTE,65.0,,1,1,,False,-6.0,,1,83.8,-18.8
table2,minilm_l6,Adapter,SST-2,,,0,,,False,,,0,96.1,
table2,minilm_l6,Adapter,Avg,,,0,,,False,,,0,,
table2,minilm_l6,Adapter,Params (%),0.74,,1,,,False,,,0,2,-1.26
table2,minilm_l6,LoRA,RTE,67.0,1.4142,2,1;2,,False,-3.0,2.8284,2,84.0,-17.0
table2,minilm_l6,LoRA,SST-2,91.0,,1,1,second,False,-2.0,,1,96.0,-5.0
table2,minilm_l6,LoRA,Avg,79.0,,2,,second,False,,,0,,
table2,minilm_l6,LoRA,Params (%),0.76,0.0,3,,,False,,,0,1,-0.24
table2,minilm_l6,PrunePEFT,RTE,70.0,1.4142,2,1;2,second,False,,,0,85.5,-15.5
table2,minilm_l6,PrunePEFT,SST-2,92.0,1.4142,2,1;2,best,False,,,0,96.6,-4.6
table2,minilm_l6,PrunePEFT,Avg,81.0,,2,,best,False,,,0,,
table2,minilm_l6,PrunePEFT,Params (%),0.75,0.0,4,,,False,,,0,1,-0.25
table2,minilm_l6,PrunePEFT (low fidelity),RTE,68.0,,1,1,,False,-3.0,,1,85.0,-17.0
table2,minilm_l6,PrunePEFT (low fidelity),SST-2,,,0,,,False,,,0,96.3,
table2,minilm_l6,PrunePEFT (low fidelity),Avg,,,0,,,False,,,0,,
table2,minilm_l6,PrunePEFT (low fidelity),Params (%),0.7,,1,,,False,,,0,1,-0.3
"""


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return collect_runs(golden_tree(tmp_path_factory.mktemp("runs")))


def test_collect_one_row_per_run(runs):
    assert len(runs) == 30 and runs["complete"].sum() == 29
    unfinished = runs[~runs["complete"]]
    assert unfinished["run"].tolist() == ["s/rte/hybrid/s3"]
    labels = set(runs["label"])
    assert {"FFT", "PrunePEFT", "PrunePEFT (low fidelity)", "Single: taylor", "No pruning",
            "Strategy transfer from RTE", "Architecture transfer from RTE"} <= labels


def test_collect_transfer_source_from_the_source_run(tmp_path):
    """The commands' own summaries: search `transfer: {kind, from_run}`; baseline found `run: <dir>`."""
    import json

    src = make_run(tmp_path, "cola/hybrid/s1", command="search", task="cola", seed=1, value=0.5)
    make_run(tmp_path, "sst2/from-cola/s1", command="search", task="sst2", seed=1, value=0.9,
             transfer={"kind": "strategy", "from_run": str(src)})
    found = make_run(tmp_path, "sst2/found/s1", command="baseline", method="found", task="sst2", seed=1, value=0.8)
    summary = json.loads((found / "summary.json").read_text())
    summary.update(run=str(src))
    del summary["transfer"]
    (found / "summary.json").write_text(json.dumps(summary))
    labels = dict(zip(collect_runs(tmp_path)["run"], collect_runs(tmp_path)["label"]))
    assert labels == {"cola/hybrid/s1": "PrunePEFT", "sst2/from-cola/s1": "Strategy transfer from CoLA",
                      "sst2/found/s1": "Architecture transfer from CoLA"}


def test_table2_golden_markdown_and_csv(runs):
    (t2,) = build_tables(runs, ["table2"])  # the packaged paper_reference.csv
    assert to_markdown(t2) == TABLE2_MD
    assert to_csv(t2) == TABLE2_CSV
    assert "99.0" not in to_markdown(t2)  # the unfinished run is never used


def test_table2_without_paper_numbers_has_no_paper_columns(runs):
    (t2,) = build_tables(runs, ["table2"], load_reference().head(0))
    md = to_markdown(t2)
    assert "| Model | Method | RTE | SST-2 | Avg | Params (%) |" in md and "paper =" not in md and " Δ" not in md
    assert to_csv(t2).splitlines()[1] == "table2,minilm_l6,FFT,RTE,71.0,1.4142,2,1;2,best,False,1.0,2.8284,2,,"


def test_table2_latex_booktabs_marks(runs):
    tex = to_latex(build_tables(runs, ["table2"])[0])
    assert "\\toprule" in tex and "\\midrule" in tex and "\\bottomrule" in tex
    # the same columns as the markdown: ours, the paper's number, Δ (LaTeX: $\\Delta$)
    assert "Model & Method & RTE & RTE paper & RTE $\\Delta$ & SST-2 & SST-2 paper & SST-2 $\\Delta$ & Avg" in tex
    assert ("minilm\\_l6 & FFT & \\textbf{71.0 $\\pm$ 1.4 {\\scriptsize (2)}} & 86.6 & -15.6 & "
            "\\underline{91.0") in tex
    assert "minilm\\_l6 & Adapter & 65.0 {\\scriptsize (1)} & 83.8 & -18.8 & -- & 96.1 & -- & -- & 0.74 & 2 & -1.26 \\\\" in tex
    assert "mean $\\pm$ sd (sample standard deviation over seeds)" in tex  # the legend labels ± in LaTeX too


def test_pandas_writes_the_latex_float_and_the_markdown_cells_as_given(runs):
    """Styler.to_latex and DataFrame.to_markdown write the tables; the layout is pinned here."""
    t2 = build_tables(runs, ["table2"])[0]
    tex = to_latex(t2)
    lines = tex.splitlines()
    assert lines[0] == f"% {t2.title} -- generated by `prunepeft report` from run outputs"
    assert lines[1:3] == ["\\begin{table}[t]", "\\centering"] and lines[3].startswith("\\caption{")
    assert lines[4:7] == [f"\\label{{tab:{t2.key}}}", "\\begin{tabular}{ll" + "r" * len(t2.header()) + "}", "\\toprule"]
    assert lines[-6:-3] == ["\\bottomrule", "\\end{tabular}", ""] and lines[-3] == "\\medskip"
    assert tex.endswith("}\n\\end{table}\n")
    # no padding to the column's width, no number parsing (0.8050 stays), the separator as asked
    assert md_table(["a", "b b"], [["0.8050", " x"], ["", "1e3"]], [":--", "--:"]) == \
        ["| a | b b |", "|:--|--:|", "| 0.8050 |  x |", "|  | 1e3 |"]
    assert md_table(["arm"], []) == ["| arm |", "|---|"]


def test_table3_only_decoders_and_table4_costs(runs):
    t3, t4 = build_tables(runs, ["table3", "table4"])
    assert t3.rows == [("tiny_llama", "LoRA"), ("tiny_llama", "PrunePEFT")]
    md4 = to_markdown(t4)
    # beside ours the paper's PrunePEFT (6.0 search epochs, 20 retrain, ratio 0.30): 0.90 − 6.0 = −5.10,
    # 2 − 20 = −18, and our epoch ratio 0.90 / 2 = 0.45 − 0.30 = +0.15
    assert ("| minilm_l6 | RTE | PrunePEFT | 0.90 ± 0.00 (n=2) | 6.0 | -5.10 | 150.0 ± 70.7 (n=2) | — | — | — | 2 | 20 | -18 "
            "| 200.0 ± 0.0 (n=2) | 0.75 ± 0.35 (n=2) | 0.45 ± 0.00 (n=2) | 0.30 | +0.15 |") in md4
    assert ("| minilm_l6 | RTE | PrunePEFT (low fidelity) | 0.90 (n=1) | 0.1 | +0.80 | 20.0 (n=1) | — | — | — | 2 | 20 | -18 "
            "| 200.0 (n=1) | 0.10 (n=1) | 0.45 (n=1) | 0.01 | +0.44 |") in md4
    # no search: marked, not zero; the paper has no FFT row in Table 4
    assert "| minilm_l6 | RTE | FFT | — | — | — | — | — | — | — | 2 | — | — | 200.0 ± 0.0 (n=2) | — | — | — | — |" in md4


def test_table5_best_single_criterion_and_deltas(runs):
    (t5,) = build_tables(runs, ["table5"])
    minilm = [r[1] for r in t5.rows if r[0] == "minilm_l6"]
    assert minilm == ["No pruning", "Random pruning", "Single criterion (best: taylor)", "No partition", "PrunePEFT"]
    md = to_markdown(t5)
    # only the ablation's own task (RTE): SST-2 and tiny_llama have PrunePEFT runs but no ablation beside them,
    # and the paper's Table 5 reports SST-2, not RTE, so no paper column stands here
    assert "| Model | Method | RTE |" in md
    assert "| minilm_l6 | No partition | <u>69.0 ± 1.4 (n=2)</u> |" in md
    assert "| minilm_l6 | Single criterion (best: taylor) | 68.0 ± 1.4 (n=2) |" in md
    assert "| minilm_l6 | PrunePEFT | **70.0 ± 1.4 (n=2)** |" in md
    assert "tiny_llama" not in md and "SST-2" not in md
    assert "| minilm_l6 | Random pruning | -9.0 ± 0.0 (n=2) |" in md
    assert "best single criterion = taylor, chosen by its mean dev metric over tasks (taylor 68.0, weight 63.0)" in md


def test_table5_best_single_criterion_over_the_tasks_all_have(tmp_path):
    """A criterion whose CoLA run has not finished is not crowned by a mean over SST-2 alone: the ranking uses
    the tasks every criterion has run on, and the note names them."""
    for crit, sst2, cola in (("weight", 0.80, 0.10), ("zeros", 0.78, 0.05), ("taylor", 0.79, None)):
        make_run(tmp_path, f"{crit}-sst2", command="search", task="sst2", seed=1, value=sst2, strategy="single",
                 criterion=crit)
        if cola is not None:
            make_run(tmp_path, f"{crit}-cola", command="search", task="cola", seed=1, value=cola, strategy="single",
                     criterion=crit)
    for task in ("sst2", "cola"):
        make_run(tmp_path, f"h-{task}", command="search", task=task, seed=1, value=0.5)
    (t5,) = build_tables(collect_runs(tmp_path), ["table5"])
    md = to_markdown(t5)
    # over all of each one's tasks taylor (79.0) would beat weight (45.0) and zeros (41.5); over SST-2 weight wins
    assert "Single criterion (best: weight)" in md and "best: taylor" not in md
    assert ("best single criterion = weight, chosen by its mean dev metric over SST-2, the tasks every criterion has "
            "run on (weight 80.0, taylor 79.0, zeros 78.0)") in md
    make_run(tmp_path, "taylor-cola", command="search", task="cola", seed=1, value=0.20, strategy="single",
             criterion="taylor")
    (t5,) = build_tables(collect_runs(tmp_path), ["table5"])
    # every criterion on both tasks: taylor (79 + 20) / 2 = 49.5 > weight 45.0 > zeros 41.5
    assert "best single criterion = taylor, chosen by its mean dev metric over tasks (taylor 49.5, weight 45.0, zeros 41.5)" \
        in to_markdown(t5)


def test_table5_from_low_fidelity_searches_only(tmp_path):
    """A tree with only low-fidelity searches (the CPU benchmark) still gives Table 5, and says so."""
    for seed, (hyb, rnd) in enumerate([(0.80, 0.78), (0.82, 0.77)], start=1):
        make_run(tmp_path, f"h{seed}", command="search", task="sst2", seed=seed, value=hyb, fidelity="low")
        make_run(tmp_path, f"r{seed}", command="search", task="sst2", seed=seed, value=rnd, fidelity="low",
                 strategy="random")
    (t5,) = build_tables(collect_runs(tmp_path), ["table5"])
    assert [r[1] for r in t5.rows] == ["Random pruning", "PrunePEFT"]
    md = to_markdown(t5)
    assert "| minilm_l6 | Random pruning | -3.5 ± 2.1 (n=2) |" in md  # paired: -2 and -5 points
    assert "low fidelity" in md
    # one default-fidelity search beside them (for its cost) does not take the table over ...
    make_run(tmp_path, "h-high", command="search", task="sst2", seed=1, value=0.5)
    (t5,) = build_tables(collect_runs(tmp_path), ["table5"])
    assert [r[1] for r in t5.rows] == ["Random pruning", "PrunePEFT"]
    assert "| minilm_l6 | PrunePEFT | **81.0 ± 1.4 (n=2)** |" in to_markdown(t5)  # the two low-fidelity runs only
    # ... but as many strategies at default fidelity do (the paper's setting wins a tie)
    make_run(tmp_path, "r-high", command="search", task="sst2", seed=1, value=0.4, strategy="random")
    (t5,) = build_tables(collect_runs(tmp_path), ["table5"])
    md = to_markdown(t5)
    assert [r[1] for r in t5.rows] == ["Random pruning", "PrunePEFT"] and "50.0 (n=1)" in md and "low fidelity" not in md


def test_table6_transfer_rows(runs):
    (t6,) = build_tables(runs, ["table6"])
    md = to_markdown(t6)
    assert "| minilm_l6 | PrunePEFT | **92.0 ± 1.4 (n=2)** |" in md
    assert "| minilm_l6 | Strategy transfer from RTE | <u>91.0 ± 1.4 (n=2)</u> |" in md
    assert "| minilm_l6 | Architecture transfer from RTE | 89.0 (n=1) |" in md
    assert "| minilm_l6 | Architecture transfer from RTE | -4.0 (n=1) |" in md


def test_paper_numbers_stand_beside_ours_unranked(runs, tmp_path):
    """A reference CSV in our own labels and column keys: the number beside our row, never ranked, Δ exact."""
    ref = tmp_path / "ref.csv"
    ref.write_text("table,model,method,column,value,source,note\n"
                   "table2,roberta_large,LoRA,rte,99.9,test fixture,not the paper\n"
                   "table2,roberta_large,Houlsby,rte,50.0,test fixture,no such row of ours\n", encoding="utf-8")
    (t2,) = build_tables(runs, ["table2"], load_reference(ref))
    md = to_markdown(t2)
    assert "| Model | Method | RTE | RTE paper | RTE Δ | SST-2 | Avg | Params (%) |" in md  # no SST-2 paper column
    assert "| minilm_l6 | LoRA | 67.0 ± 1.4 (n=2) | 99.9 | -32.9 | <u>91.0 (n=1)</u> |" in md  # 67.0 − 99.9
    assert "| minilm_l6 | FFT | **71.0 ± 1.4 (n=2)** | — | — |" in md  # no paper number: empty, not guessed
    assert "**99.9**" not in md and "50.0" not in md  # never ranked; a method we did not run is not shown
    lines = to_csv(t2).splitlines()
    assert "table2,minilm_l6,LoRA,RTE,67.0,1.4142,2,1;2,,False,-3.0,2.8284,2,99.9,-32.9" in lines
    assert "table2,minilm_l6,LoRA,SST-2,91.0,,1,1,second,False,-2.0,,1,," in lines
    assert "minilm\\_l6 & LoRA & 67.0 $\\pm$ 1.4 {\\scriptsize (2)} & 99.9 & -32.9 &" in to_latex(t2)


def test_packaged_reference_csv_is_valid():
    ref = load_reference()
    assert list(ref.columns) == ["table", "model", "method", "column", "value", "source", "note"]
    assert all(s.startswith("arXiv 2506.07587 Table ") for s in ref["source"])
    assert len(ref) == 141 and set(ref["table"]) == {"table2", "table3", "table4", "table5", "table6"}


def test_paper_numbers_of_tables_3_and_6(runs):
    """The packaged CSV's method names mapped to our rows: Llama-3-8B's Table 3, Table 6's transfers."""
    t3, t6 = build_tables(runs, ["table3", "table6"])
    md3 = to_markdown(t3)
    # LoRA(r=32) RTE 86.6 (55.0 − 86.6 = −31.6), %param 0.40; PrunePEFT 84.8 (57.0 − 84.8 = −27.8), 0.34;
    # both below RTE's no-signal bound (58.6): at chance (†), never ranked
    assert "| tiny_llama | LoRA | 55.0 (n=1) † | 86.6 | -31.6 | 0.80 | 0.40 | +0.40 |" in md3
    assert "| tiny_llama | PrunePEFT | 57.0 (n=1) † | 84.8 | -27.8 | 0.75 | 0.34 | +0.41 |" in md3
    assert "arXiv 2506.07587 (Llama-3-8B)" in md3
    md6 = to_markdown(t6)
    # "no transfer" 96.6, "RTE pruning strategy transfer" 96.4, "RTE fine-tuned architecture transfer" 96.4
    assert "| minilm_l6 | PrunePEFT | **92.0 ± 1.4 (n=2)** | 96.6 | -4.6 |" in md6
    assert "| minilm_l6 | Strategy transfer from RTE | <u>91.0 ± 1.4 (n=2)</u> | 96.4 | -5.4 |" in md6
    assert "| minilm_l6 | Architecture transfer from RTE | 89.0 (n=1) | 96.4 | -7.4 |" in md6


def test_bad_reference_csv_and_unknown_table(runs, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("model,value\nx,1\n", encoding="utf-8")
    with pytest.raises(UserError, match="bad.csv.*expected table,model,method"):
        load_reference(bad)
    with pytest.raises(UserError, match="unknown table 'table9'; valid choices: table2"):
        build_tables(runs, ["table9"])


def _cfg(runs_dir, out, **kw):
    return OmegaConf.create({"runs": str(runs_dir), "out": str(out), "figures": False, "reference_csv": None,
                             "tables": ["table2", "table3", "table4", "table5", "table6"], **kw})


def test_report_command_writes_every_format(tmp_path):
    root = golden_tree(tmp_path / "runs")
    out = tmp_path / "out"
    result = report_run(_cfg(root, out), out)
    assert result["tables"] == ["table2", "table3", "table4", "table5", "table6"] and result["finished"] == 29
    for key in result["tables"]:
        for ext in ("md", "tex", "csv"):
            assert (out / f"{key}.{ext}").stat().st_size > 0
    md = (out / "table2.md").read_text(encoding="utf-8")
    assert md == TABLE2_MD + "\n"
    index = (out / "report.md").read_text(encoding="utf-8")
    assert "29 finished, 1 unfinished" in index and "- `s/rte/hybrid/s3` (running)" in index
    assert len((out / "runs.csv").read_text(encoding="utf-8").splitlines()) == 31


# --- one configuration per cell, run directories only ---------------------------------------------

def test_only_run_directories_are_runs(tmp_path):
    """Tracker folders (csv/, mlflow/, a run's trackers/), an export, .hydra and a checkpoint are never runs."""
    import json

    from prunepeft.report.collect import find_run_dirs

    root = tmp_path / "runs"
    run = make_run(root, "rte/hybrid/s1", command="search", task="rte", seed=1, value=0.7)
    make_run(root, "rte/hybrid/s2", command="search", task="rte", seed=2, value=0.7, done=False)
    summary = (run / "summary.json").read_text()
    for tracker in (run / "trackers" / "csv", root / "csv", root / "mlflow" / "0" / "abc" / "artifacts"):
        tracker.mkdir(parents=True)
        (tracker / "summary.json").write_text(summary)  # the csv tracker's copy of the run's summary
    (root / "csv" / "metrics.csv").write_text("step,loss\n1,0.7\n")
    export = root / "export"
    export.mkdir()
    for name, obj in (("summary.json", json.loads(summary)), ("found_config.json", {"units": []}),
                      ("prunepeft_export.json", {"format": "self-contained"})):
        (export / name).write_text(json.dumps(obj))
    (run / ".hydra").mkdir()
    (run / ".hydra" / "config.yaml").write_text("seed: 1\n")
    (run / "checkpoint").mkdir()
    (run / "checkpoint" / "state.json").write_text("{}")
    (run / "export").mkdir()
    (run / "export" / "run.json").write_text((run / "run.json").read_text())  # an export copied into the run
    assert [d.relative_to(root).as_posix() for d in find_run_dirs(root)] == ["rte/hybrid/s1", "rte/hybrid/s2"]
    out = tmp_path / "out"
    report_run(_cfg(root, out, tables=["table2"]), out)
    index = (out / "report.md").read_text(encoding="utf-8")
    assert "1 finished, 1 unfinished" in index and "- `rte/hybrid/s2` (running)" in index
    assert "csv" not in index and "export" not in index and "mlflow" not in index
    assert len((out / "runs.csv").read_text(encoding="utf-8").splitlines()) == 3


def test_report_command_user_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no runs found under .*empty"):
        report_run(_cfg(tmp_path / "empty", tmp_path / "o"), tmp_path / "o")
    with pytest.raises(UserError, match="runs='.*nowhere' is not a directory"):
        report_run(_cfg(tmp_path / "nowhere", tmp_path / "o"), tmp_path / "o")
    with pytest.raises(UserError, match="unknown table 'tab2'"):
        report_run(_cfg(tmp_path / "empty", tmp_path / "o", tables=["tab2"]), tmp_path / "o")
    assert not (tmp_path / "o").exists()  # nothing half-written


@pytest.mark.parametrize("override, message", [
    ("runs={tmp}/nowhere", "is not a directory"),
    ("tables=[table2,tab5]", "unknown table 'tab5'; valid choices: table2"),
    ("reference_csv={tmp}/none.csv", "none.csv' does not exist"),
])
def test_report_bad_inputs_are_caught_before_hydra_creates_out(tmp_path, override, message):
    """The CLI's pre-check (no `out` directory, no report.log) -> `error: ...`, exit code 2."""
    from prunepeft.cli import validate_overrides

    (tmp_path / "runs").mkdir()
    base = [f"runs={tmp_path / 'runs'}", f"out={tmp_path / 'o'}"]
    assert validate_overrides("report", base) is None
    error = validate_overrides("report", [*base, override.format(tmp=tmp_path)])
    assert error is not None and message in error


def test_a_random_weight_backbone_says_so_in_the_table_itself(tmp_path):
    """Table 3 at scale=cpu/gpu runs tiny_llama (no pretrained decoder installs offline): the row says
    "random weights: plumbing only" in the table, and a pretrained backbone's row does not."""
    root = tmp_path / "runs"
    tiny = {"model": {"kind": "tiny"}}
    make_run(root, "s/rte/llama/s1", command="search", task="rte", seed=1, value=0.51, model="tiny_llama",
             family="llama", config_over=tiny)
    make_run(root, "b/rte/llama-lora/s1", command="baseline", method="lora", task="rte", seed=1, value=0.50,
             model="tiny_llama", family="llama", config_over=tiny)
    make_run(root, "s/rte/minilm/s1", command="search", task="rte", seed=1, value=0.60)
    t2, t3 = build_tables(collect_runs(root), ["table2", "table3"])
    assert t3.rows == [("tiny_llama (random weights: plumbing only)", "LoRA"),
                       ("tiny_llama (random weights: plumbing only)", "PrunePEFT")]
    assert "| tiny_llama (random weights: plumbing only) | PrunePEFT |" in to_markdown(t3)
    assert t2.rows == [("minilm_l6", "PrunePEFT")]


def test_table4_gives_wall_clock_by_phase_from_the_runs_cost(tmp_path):
    """Issue 21 Deliver 6: search against retrain counting every pass (summary.json `cost`), by phase."""
    import json

    root = tmp_path / "runs"
    for seed, (warm, probes, rounds, retrain) in {1: (10.0, 4.0, 20.0, 100.0), 2: (14.0, 0.0, 30.0, 80.0)}.items():
        run = make_run(root, f"s/rte/s{seed}", command="search", task="rte", seed=seed, value=0.6, search_wall=999.0)
        summary = json.loads((run / "summary.json").read_text())
        phases = {"setup": 2.0, "warmup_train": warm, "warmup_probes": probes / 2, "rounds": rounds,
                  "round_probes": 0.0, "round_diagnostics": probes / 2, "retrain": retrain}
        search = warm + probes + rounds
        summary["cost"] = {"phases_s": phases, "search_s": search, "retrain_s": retrain,
                           "search_over_retrain": search / retrain}
        (run / "summary.json").write_text(json.dumps(summary))
    (t4,) = build_tables(collect_runs(root), ["table4"])
    row = ("minilm_l6", "RTE", "PrunePEFT")
    # search 34 and 44 s (not search.wall_s = 999), warm-up 10/14, probes 4/0, rounds 20/30, retrain 100/80,
    # ratio 0.34 and 0.55
    assert t4.cell(row, "Search (s)").mean == pytest.approx(39.0)
    assert t4.cell(row, "Warm-up (s)").mean == pytest.approx(12.0)
    assert t4.cell(row, "Probes (s)").mean == pytest.approx(2.0)
    assert t4.cell(row, "Rounds (s)").mean == pytest.approx(25.0)
    assert t4.cell(row, "Retrain (s)").mean == pytest.approx(90.0)
    assert t4.cell(row, "Search / retrain").mean == pytest.approx((34 / 100 + 44 / 80) / 2)


def test_table6_preset_baselines_are_architecture_transfers_and_table5_keeps_its_own_tasks(tmp_path):
    """Two pooling bugs `make tables SCALE=smoke` found: the table6 preset sets `strategy.from_run` for
    both commands, so its `method=found` baselines were read as strategy transfers (one cell with the
    searches); and Table 5 took every task any PrunePEFT run had, leaving empty ablation cells."""
    root = tmp_path / "runs"
    src = make_run(root, "rte/s/hybrid/s1", command="search", task="rte", seed=1, value=0.6)
    over = {"strategy": {"from_run": str(src)}, "extra": {"source": "rte"}}
    make_run(root, "sst2/s/from_rte/s1", command="search", task="sst2", seed=1, value=0.80, config_over=over)
    make_run(root, "sst2/b/found_rte/s1", command="baseline", method="found", task="sst2", seed=1, value=0.70,
             config_over={**over, "run": str(src)})
    make_run(root, "sst2/s/hybrid/s1", command="search", task="sst2", seed=1, value=0.90)
    make_run(root, "sst2/s/random/s1", command="search", task="sst2", seed=1, value=0.85, strategy="random")
    t5, t6 = build_tables(collect_runs(root), ["table5", "table6"])
    assert t6.cell(("minilm_l6", "Strategy transfer from RTE"), "SST-2").mean == pytest.approx(80.0)
    assert t6.cell(("minilm_l6", "Architecture transfer from RTE"), "SST-2").mean == pytest.approx(70.0)
    assert [c.name for c in t5.columns if c.name in ("RTE", "SST-2")] == ["SST-2"]
