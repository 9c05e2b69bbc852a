"""Tables 2-6 of arXiv 2506.07587 from the runs collected by prunepeft.report.collect.

- Table 2: PrunePEFT vs FFT / Adapter / LoRA / DoRA (+ the low-fidelity search) on GLUE, encoders.
- Table 3: the same on a decoder backbone (LoRA, DoRA, PrunePEFT).
- Table 4: search cost (epoch-equivalents, wall-clock) vs retraining cost.
- Table 5: ablations (no pruning, random, random type-matched, best single criterion, no partition, hybrid).
- Table 6: strategy transfer (reuse S_H) and architecture transfer (retrain a found config).

Metric cells are dev-set values ×100 of the last epoch (docs/method.md#retrain), mean ± sd (sample standard
deviation) over seeds with n; baseline/ablation rows also get the paired per-seed difference to PrunePEFT.
A cell pools the seeds of one configuration (report.configs): a method run in several gets one row
each. Beside each row stands the paper's number for its method and Δ = ours − paper (report.paper).
"""
from __future__ import annotations

from dataclasses import replace

import pandas as pd

from prunepeft.errors import UserError
from prunepeft.report.aggregate import Cell, paired_delta, seed_cell, select_lr, stats
from prunepeft.report.backbone_check import check_one_backbone
from prunepeft.report.chance import at_chance, chance_bound
from prunepeft.report.collect import DECODER_FAMILIES, EQUAL_PARAMS, TASK_ORDER, task_name
from prunepeft.report.configs import row_label, split_notes, split_variants, variant_order
from prunepeft.report.paper import base_label, load_reference, paper_numbers
from prunepeft.report.render import Column, Table

__all__ = ["TABLES", "build_tables", "load_reference"]

TABLES = ("table2", "table3", "table4", "table5", "table6")
MAIN_ROWS = ["FFT", "Head only", "Adapter", "Houlsby", "LoRA", "LoRA, equal parameters", "DoRA", "PrunePEFT",
             "PrunePEFT (low fidelity)"]
ABLATION_ROWS = ["No pruning", "Random pruning", "Random, type-matched", "Single criterion", "No partition",
                 "PrunePEFT", "PrunePEFT, warm retrain", "LoRA, equal compute"]
EQUAL_COMPUTE_ROWS = ("PrunePEFT, warm retrain", "LoRA, equal compute")  # issue 22, item 5
LEGEND = ("Cells: dev-set metric ×100 (last epoch), mean ± sd (sample standard deviation over seeds), n = seeds "
          "in that cell; Avg = mean of the task means (rows with every task){params}; **best**, <u>second</u> per "
          "column and model; — = no finished run.")
PAPER_LEGEND = ("paper = the number arXiv 2506.07587 ({models}) reports for the row's method beside each of our "
                "columns it has (a single run on the paper's backbone, not measured here, never ranked or averaged "
                "with ours; — where it reports none); Δ = ours − paper, in {unit}.")
CHANCE_LEGEND = ("† = at chance: inside the 95 % range that a predictor with no signal (the majority class; 0 for MCC "
                 "and correlations) reaches on this dev split (docs/method.md#results-at-chance), so these runs show no "
                 "evidence of learning the task; never ranked (an Avg over a † cell, and a paired difference between "
                 "two † cells, carry † too).")


def _task_rank(task: str) -> int:
    """Position of a task in the paper's column order (unknown tasks and other columns last)."""
    return TASK_ORDER.index(task) if task in TASK_ORDER else len(TASK_ORDER)


def _order(labels: list[str], preferred: list[str]) -> list[str]:
    return [l for l in preferred if l in labels] + sorted(l for l in labels if l not in preferred)


def _chance_cell(runs: pd.DataFrame) -> Cell:
    """The seed cell of one (row, task), marked at chance where its mean is inside the no-signal range."""
    c = seed_cell(runs)
    if c.missing:
        return c
    first = runs.iloc[0]
    keys = first["config_keys"] if isinstance(first.get("config_keys"), dict) else {}
    metric = str(first["metric"])
    bound = chance_bound(str(first["task"]), metric, str(first["split"]), keys.get("data.eval_subset"))
    return replace(c, at_chance=at_chance(c.mean, None if bound is None else 100 * bound, metric))


def _variants(dl: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """(variant, runs) of one (model, label): one configuration each (report.configs.split_variants)."""
    return [(v, dl[dl["variant"] == v]) for v in sorted(dl["variant"].unique(), key=variant_order)]


def _metric_table(key: str, title: str, d: pd.DataFrame, preferred: list[str], lr_choices: pd.DataFrame,
                  params: bool = False) -> Table:
    """Rows (model, method) × task columns (+ Avg, + Params %), with deltas to PrunePEFT.

    A method run in several configurations has one row per configuration. The paired difference to
    PrunePEFT needs PrunePEFT in one configuration on that task (else it is left out and said so).
    """
    tasks = [t for t in TASK_ORDER if t in set(d["task"])] + sorted(set(d["task"]) - set(TASK_ORDER))
    cols = [Column(task_name(t)) for t in tasks] + ([Column("Avg")] if len(tasks) > 1 else [])
    cols += [Column("Params (%)", better=None)] if params else []
    t = Table(key, title, ["Model", "Method"], cols,
              legend=LEGEND.format(params="; Params = mean % of the base model over the row's runs" if params else ""))
    unpaired = set()
    for model in sorted(d["model"].unique()):
        dm = d[d["model"] == model]
        # A backbone with random weights (the tiny test models; Table 3's decoder at scale=cpu/gpu, where
        # no pretrained decoder installs offline) says so in the table itself, not only in its config.
        shown = f"{model} (random weights: plumbing only)" if (dm.get("model_kind") == "tiny").any() else model
        for label in _order(list(dm["label"].unique()), preferred):
            for variant, dl in _variants(dm[dm["label"] == label]):
                row, means = (shown, row_label(label, variant)), []
                t.labels[row] = label
                for task in tasks:
                    t.cells[(row, task_name(task))] = c = _chance_cell(dl[dl["task"] == task])
                    means.append(c.mean)
                    ref = dm[(dm["label"] == "PrunePEFT") & (dm["task"] == task)]
                    if label == "PrunePEFT" or c.missing or ref.empty:
                        continue
                    if ref["variant"].nunique() > 1:
                        unpaired.add(f"{model} on {task_name(task)}")
                        continue
                    delta = paired_delta(dl[dl["task"] == task], ref)
                    # two runs that both show no evidence of learning: their difference says nothing (†)
                    t.deltas[(row, task_name(task))] = replace(delta, at_chance=c.at_chance and _chance_cell(ref).at_chance)
                if len(tasks) > 1 and all(m == m for m in means):  # Avg only over complete rows
                    chance = any(t.cells[(row, task_name(k))].at_chance for k in tasks)  # never ranked either
                    t.cells[(row, "Avg")] = Cell(sum(means) / len(means), n=len(means), digits=1, show_std=False,
                                                 at_chance=chance)
                if params:
                    t.cells[(row, "Params (%)")] = stats(dl["params_percent"].dropna(), digits=2, show_std=False)
                t.rows.append(row)
    if any(c.at_chance for c in t.cells.values()):
        t.legend += " " + CHANCE_LEGEND
    t.notes += split_notes(d)
    if unpaired:
        t.notes.append("No paired difference to PrunePEFT where PrunePEFT ran in several configurations: "
                       + ", ".join(sorted(unpaired)) + ".")
    t.notes += _lr_notes(lr_choices, d)
    return t


def _lr_notes(choices: pd.DataFrame, d: pd.DataFrame) -> list[str]:
    used = set(zip(d["model"], d["label"], d["variant"], d["task"]))
    picked = [f"{r.model} {row_label(r.label, r.variant)} on {task_name(r.task)}: lr {r.lr} (of {r.candidates})"
              for r in choices.itertuples() if (r.model, r.label, r.variant, r.task) in used]
    if not picked:
        return []
    return ["Learning rate chosen per (method, task) by the best mean dev metric over seeds, as the paper tuned "
            "it per task (the dev split is also the one reported): " + "; ".join(picked) + "."]


def _table4(d: pd.DataFrame) -> Table:
    """Table 4: search cost vs retrain cost; baselines give the cost of training one configuration."""
    d = d[d["label"].isin(MAIN_ROWS) & d["transfer_kind"].isna()]
    cols = [Column("Search (epoch-eq.)", None), Column("Search (s)", None), Column("Warm-up (s)", None),
            Column("Probes (s)", None), Column("Rounds (s)", None), Column("Retrain epochs", None),
            Column("Retrain (s)", None), Column("Search / retrain", None), Column("Search / retrain (epoch-eq.)", None)]
    t = Table("table4", "Table 4 — search vs retrain cost", ["Model", "Task", "Method"], cols,
              legend="Cells: mean ± sd (sample standard deviation over seeds), n = seeds in that cell; wall-clock in "
                     "seconds on the run's own device, every pass counted (summary.json `cost`: warm-up training, "
                     "probes = every masked pass of the warm-up and the rounds incl. diagnostics, rounds incl. their "
                     "dev pass; Search = their sum; Retrain = building, training and saving the found configuration); "
                     "epoch-equivalents = training examples processed by the search / training-set size (forward-only "
                     "passes not counted: the paper's unit); Search / retrain = wall-clock ratio, (epoch-eq.) = search "
                     "epoch-eq. / retrain epochs, the paper's ratio; — = not applicable or not recorded (runs before "
                     "summary.json had `cost`: search and retrain training time only).")
    # Runs with `cost` (every pass counted); older runs fall back to the search's and the fit's own wall-clock.
    search_s = d["cost_search_s"].fillna(d["search_wall_s"]) if "cost_search_s" in d else d["search_wall_s"]
    retrain_s = d["cost_retrain_s"].fillna(d["train_wall_s"]) if "cost_retrain_s" in d else d["train_wall_s"]
    d = d.assign(search_s=search_s, retrain_s=retrain_s, ratio=search_s / retrain_s,
                 ratio_epochs=d["search_epoch_eq"] / d["train_epochs"])
    for col in ("cost_warmup_s", "cost_probes_s", "cost_rounds_s"):
        if col not in d:
            d[col] = float("nan")
    fields = (("Search (epoch-eq.)", "search_epoch_eq", 2), ("Search (s)", "search_s", 1),
              ("Warm-up (s)", "cost_warmup_s", 1), ("Probes (s)", "cost_probes_s", 1), ("Rounds (s)", "cost_rounds_s", 1),
              ("Retrain epochs", "train_epochs", 0), ("Retrain (s)", "retrain_s", 1),
              ("Search / retrain", "ratio", 2), ("Search / retrain (epoch-eq.)", "ratio_epochs", 2))
    for (model, task), g in sorted(d.groupby(["model", "task"]), key=lambda kv: (kv[0][0], _task_rank(kv[0][1]))):
        for label in _order(list(g["label"].unique()), MAIN_ROWS):
            for variant, gl in _variants(g[g["label"] == label]):
                row = (model, task_name(task), row_label(label, variant))
                t.labels[row] = label
                for col, field, digits in fields:
                    t.cells[(row, col)] = seed_cell(gl, field, digits, show_std=col != "Retrain epochs")
                t.rows.append(row)
    t.notes += split_notes(d)
    return t


def _equal_params_note(t: Table, d: pd.DataFrame) -> Table:
    """Say what "…, equal parameters" rows are, with the parameter counts they matched (claim (a'))."""
    matched = d[d["label"].str.endswith(EQUAL_PARAMS)]["match_params"].dropna()
    if len(matched):
        counts = sorted({int(m["params"]) for m in matched})
        t.notes.insert(0, "LoRA, equal parameters = uniform LoRA sized to the found parameter count of the PrunePEFT "
                          "run of its task, lr and seed (match_params), not to the budget: the comparison at equal "
                          f"parameters (PEFT parameters matched: {', '.join(f'{c:,}' for c in counts)}).")
    return t


def _table5(d: pd.DataFrame, lr_choices: pd.DataFrame) -> Table:
    """Table 5: ablations at the same budget and k; the single criterion shown is the best one."""
    d = d[((d["command"] == "search") | d["label"].isin(EQUAL_COMPUTE_ROWS)) & d["transfer_kind"].isna()].copy()
    d["label"] = d["label"].astype(str)
    notes = []
    # One fidelity per table, so that every row is searched the same way: the one at which more
    # strategies ran (the paper's, rounds on D, on a tie); e.g. the CPU benchmark runs the
    # ablation at low fidelity (rounds on d) beside a single default-fidelity search for its cost.
    low = d["fidelity"] == "low"
    if d.loc[low, "label"].nunique() <= d.loc[~low, "label"].nunique():
        d = d[~low]
    else:
        d = d[low].copy()
        d["label"] = d["label"].str.removesuffix(" (low fidelity)")
        notes.append("Every search in this table ran at low fidelity (pruning rounds on the warm-up subset d).")
    # The ablation's own tasks and models: PrunePEFT runs made for Tables 2-4 and 6 on other tasks (or on
    # Table 3's decoder) have no ablation beside them and would only add empty cells.
    ablated = d[d["label"] != "PrunePEFT"]
    d = d[d["task"].isin(set(ablated["task"])) & d["model"].isin(set(ablated["model"]))]
    for model in sorted(d["model"].unique()):
        singles = d[(d["model"] == model) & d["label"].str.startswith("Single: ")]
        if singles.empty:
            continue
        # Ranked over the tasks every criterion has run on: a mean over fewer (or easier) tasks would favour
        # the criteria whose other runs have not finished yet (CoLA's MCC near 0 beside SST-2's accuracy).
        cells = singles.groupby(["label", "task"])["points"].mean().unstack("task")
        shared = [t for t in cells.columns if cells[t].notna().all()]
        per_task = (cells[shared] if shared else cells).mean(axis=1)
        best = per_task.idxmax()
        d = d[~((d["model"] == model) & d["label"].str.startswith("Single: ") & (d["label"] != best))]
        crit = best.removeprefix("Single: ")
        d.loc[(d["model"] == model) & (d["label"] == best), "label"] = f"Single criterion (best: {crit})"
        ranked = per_task.sort_values(ascending=False).items()
        listed = ", ".join(f"{label.removeprefix('Single: ')} {v:.1f}" for label, v in ranked)
        in_order = sorted(shared, key=lambda t: (TASK_ORDER.index(t) if t in TASK_ORDER else len(TASK_ORDER), t))
        over = ("over tasks" if len(shared) == cells.shape[1] else
                f"over {', '.join(map(task_name, in_order))}, the tasks every criterion has run on" if shared else
                "over the tasks each has run on (no task common to all)")
        notes.append(f"{model}: best single criterion = {crit}, chosen by its mean dev metric {over} ({listed}).")
    d = d[d["label"].isin(ABLATION_ROWS) | d["label"].str.startswith("Single criterion")]
    single = ABLATION_ROWS.index("Single criterion")  # the best single criterion's row stands in its place
    order = [*ABLATION_ROWS[:single], *sorted(set(d["label"]) - set(ABLATION_ROWS)), *ABLATION_ROWS[single + 1:]]
    t = _metric_table("table5", "Table 5 — ablations of the pruning strategy", d, order, lr_choices)
    matched = d[d["label"] == "LoRA, equal compute"]["match_compute"].dropna()
    if len(matched):
        examples = sorted({(m["epochs"], m["examples"], m["target_examples"]) for m in matched})
        listed = "; ".join(f"{e} epochs = {x:,} examples for {t_:,}" for e, x, t_ in examples)
        notes.append("PrunePEFT, warm retrain = the retrain starts from the search's trained units and head "
                     "(search.retrain_init=warm); LoRA, equal compute = uniform LoRA at the budget, trained in whole "
                     "epochs on about as many examples as the PrunePEFT run of its task and seed trained in all "
                     f"(warm-up + rounds + retrain; forward-only passes not counted): {listed}.")
    t.notes = notes + t.notes
    return t


def _table6(d: pd.DataFrame, lr_choices: pd.DataFrame) -> Table:
    """Table 6: S_H and found configurations transferred from a source task to the targets."""
    transfer = d[d["transfer_kind"].notna()]
    targets = set(transfer["task"])
    own = d[(d["label"] == "PrunePEFT") & d["task"].isin(targets)]
    d = pd.concat([own, transfer])
    sources = sorted(set(transfer["transfer_from"].dropna()), key=lambda s: (_task_rank(s), s))
    order = ["PrunePEFT", *(f"{k} transfer from {task_name(s)}" for k in ("Strategy", "Architecture") for s in sources)]
    t = _metric_table("table6", "Table 6 — strategy and architecture transfer", d, order, lr_choices)
    t.notes.insert(0, "PrunePEFT = searched on the target task itself; strategy transfer = the source run's "
                      "assignment S_H reused for the target's search; architecture transfer = the source run's "
                      "found configuration retrained on the target.")
    return t


def attach_paper(t: Table, reference: pd.DataFrame) -> None:
    """The paper's number beside each of our rows that the paper reports (report.paper), with Δ.

    The paper's Avg stands beside ours only when it averages the same tasks as our columns.
    """
    values, avg_tasks, models = paper_numbers(reference, t.key)
    names = [c.name for c in t.columns]
    ours = [n for n in names if n in {task_name(k) for k in TASK_ORDER}]
    other_avg = set()
    for row in t.rows:
        label = base_label(t.labels.get(row, row[-1]))
        for col in names:
            if (label, col) not in values:
                continue
            if col == "Avg" and sorted(avg_tasks.get(label, [])) != sorted(ours):
                other_avg.add(", ".join(avg_tasks.get(label, [])))
                continue
            t.paper[(row, col)] = values[(label, col)]
    t.paper_columns = [n for n in names if any((r, n) in t.paper for r in t.rows)]
    if t.paper_columns:
        unit = "points" if t.key != "table4" else "the column's unit"
        t.legend += " " + PAPER_LEGEND.format(models=models, unit=unit + (" (Params: percentage points)"
                                                                         if "Params (%)" in t.paper_columns else ""))
    if other_avg:
        t.notes.append(f"The paper's Avg is over other tasks ({'; '.join(sorted(other_avg))}) than ours "
                       f"({', '.join(ours)}): not beside ours.")


def build_tables(runs: pd.DataFrame, names: list[str] | tuple[str, ...] = TABLES,
                 reference: pd.DataFrame | None = None) -> list[Table]:
    """Tables `names` from the finished runs in `runs` (see collect_runs); unknown names -> UserError."""
    for name in names:
        if name not in TABLES:
            raise UserError(f"unknown table {name!r}; valid choices: {', '.join(TABLES)}")
    reference = load_reference() if reference is None else reference
    d = runs[runs["complete"] & runs["value"].notna()].copy() if not runs.empty else runs
    check_one_backbone(d)  # pruned and unpruned backbones never share a table (UserError naming the runs)
    if d.empty:
        d = pd.DataFrame(columns=[*runs.columns, "points"])
    d = split_variants(d)  # one configuration per cell: runs differing in a result-changing key are split
    d, lr_choices = select_lr(d, ("model", "label", "variant", "task"))
    d = d.assign(points=d["value"].astype(float) * 100)
    decoder = d["family"].isin(DECODER_FAMILIES)
    plain = d["transfer_kind"].isna()
    main = plain & d["label"].isin(MAIN_ROWS)
    builders = {
        "table2": lambda: _equal_params_note(_metric_table("table2", "Table 2 — PrunePEFT vs baselines on GLUE",
                                                           d[main & ~decoder], MAIN_ROWS, lr_choices, params=True),
                                             d[main & ~decoder]),
        "table3": lambda: _metric_table("table3", "Table 3 — decoder backbone", d[main & decoder], MAIN_ROWS,
                                        lr_choices, params=True),
        "table4": lambda: _table4(d),
        "table5": lambda: _table5(d, lr_choices),
        "table6": lambda: _table6(d, lr_choices),
    }
    tables = []
    for name in names:
        table = builders[name]()
        attach_paper(table, reference)
        tables.append(table)
    return tables
