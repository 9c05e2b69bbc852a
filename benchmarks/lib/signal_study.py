"""Search-signal study (settings) and evidence (hybrid vs random vs uniform LoRA), with committed results.

Every run is `prunepeft search|baseline` in its own process (`study_runner.py`); its small files
(run.json, summary.json, found_config.json, warmup.json, rounds.jsonl, overrides.json) are copied to
`benchmarks/results/<study>/<arm>-s<seed>/`. A run already there is skipped; one whose recorded
overrides differ from the arm's is refused. `--report` rebuilds every number from there. The
hybrid-rule studies (`--study grid|rules`) live in `rules_study.py`.

Studies (MiniLM-L6, SST-2 2k, the fixed 5k held-out slice of SST-2 train, diagnostics on):

- `settings`: arms varying reinit (paper / keep), steps per round (d = 512, 1024, the full 2k), the
  round learning rate, k and the type-offset option; seeds 101-103 (disjoint from the evidence).
  The winner is chosen by a rule fixed before the runs (`choose_settings`): the highest
  null-corrected Spearman of the combined p, unless the runner-up's retrained held-out accuracy is
  more than 1 point higher.
- `evidence`: at the chosen settings, paired seeds of hybrid, random and uniform LoRA at the hybrid
  run's parameter count, added in blocks of 8 until every difference to hybrid has a 95 % interval
  of ±1.0 point or 24 seeds; then descriptive arms with 5 seeds.

    python -m benchmarks.signal_study --study all --workers 8 --deadline 500
    python -m benchmarks.signal_study --report
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from benchmarks.lib.rules_study import (RULES_SEEDS, choose_rule, grid_phase, grid_table,  # noqa: F401  (rule_arm:
                         rule_arm, rules_phase)  # stage B's arm for the adopted rule, re-exported)
from benchmarks.lib.study_runner import ROOT, RESULTS, _arm, accuracy, load_runs, paired, run_many
from prunepeft.run import outputs  # the run-file names
from prunepeft.analysis.stats import fisher_mean, mde, mean_ci  # (one implementation of the statistics)

SEARCH = ["search.diagnostics.enabled=true", "search.retrain_epochs=2"]
DEMO = ["search.reinit=paper", "search.fidelity=low", "search.warmup.subset=512", "search.k=4",
        "search.type_norm=none"]
KEEP = _arm(DEMO, **{"search.reinit": "keep"})
SETTINGS: dict[str, list[str]] = {
    "demo": DEMO,
    "demo_z": _arm(DEMO, **{"search.type_norm": "zscore"}),
    "demo_high": _arm(DEMO, **{"search.fidelity": "high"}),
    "demo_lr3e-3": _arm(DEMO, **{"train.lr_peft": "3e-3"}),
    "keep": KEEP,
    "keep_z": _arm(KEEP, **{"search.type_norm": "zscore"}),
    "keep_d1024": _arm(KEEP, **{"search.warmup.subset": "1024"}),
    "keep_high": _arm(KEEP, **{"search.fidelity": "high"}),
    "keep_z_high": _arm(KEEP, **{"search.type_norm": "zscore", "search.fidelity": "high"}),
    "keep_lr3e-3": _arm(KEEP, **{"train.lr_peft": "3e-3"}),
    "keep_k2": _arm(KEEP, **{"search.k": "2"}),
}
SETTINGS_SEEDS = [101, 102, 103]
# Issue "Light-PEFT in the house", Deliver 3 and 5: hybrid with rank-level pruning (fills B to within
# one rank) and the Light-PEFT arm, warm-started (its recipe) and fresh-initialised (like our retrain).
# Its estimation counts steps on the full training set D (fidelity=high); the preset sets arm=light_peft.
GRANULARITY_ARMS: dict[str, list[str]] = {
    "hybrid_rank": ["strategy=hybrid", "search.granularity=rank", "arm=hybrid_rank"],
    "light_peft": ["strategy=light_peft", "search.fidelity=high"],
    "light_peft_fresh": ["strategy=light_peft", "search.fidelity=high", "search.retrain_init=fresh",
                         "arm=light_peft_fresh"],
}


def signal_row(runs: dict[int, dict]) -> dict:
    """Per arm: Fisher means over seeds x rounds of the combined / null / per-criterion correlations."""
    diags = [r["diagnostics"] for run in runs.values() for r in run["rounds"] if "diagnostics" in r]
    comb = [d["spearman_combined"] for d in diags]
    null = [d["spearman_null"] for d in diags]
    per_crit = {c: fisher_mean([d["spearman"].get(c) for d in diags]) for c in (diags[0]["spearman"] if diags else {})}
    pct = [d["decision"]["percentile"] for d in diags if "decision" in d]
    return {
        "rounds": len(diags), "combined": fisher_mean(comb), "null": fisher_mean(null),
        "corrected": (statistics.mean([c for c in comb if c is not None]) - statistics.mean([n for n in null if n is not None]))
        if comb and null else None,
        "reliability": fisher_mean([d["reliability"] for d in diags]),
        "per_criterion": per_crit, "decision_percentile": mean_ci(pct),
        "learned_nothing": sum(1 for d in diags if d.get("learned") is False),
        "dev": mean_ci([a for run in runs.values() if (a := accuracy(run["summary"], "validation")) is not None]),
        "heldout": mean_ci([a for run in runs.values() if (a := accuracy(run["summary"], "train_heldout")) is not None]),
        "params_pct": statistics.mean(run["summary"]["params"]["percent"] for run in runs.values()),
        "diag_s": statistics.mean(d["wall_s"] for d in diags) if diags else None,
    }


def choose_settings(rows: dict[str, dict]) -> tuple[str, str, str]:
    """The rule fixed before the runs: (winner, runner-up, why)."""
    ranked = sorted((a for a in rows if rows[a]["corrected"] is not None), key=lambda a: -rows[a]["corrected"])
    if len(ranked) < 2:
        return (ranked[0] if ranked else "demo"), "", "fewer than two arms finished"
    best, second = ranked[0], ranked[1]
    acc = {a: (rows[a]["heldout"] or (None,))[0] for a in (best, second)}
    if acc[best] is not None and acc[second] is not None and acc[second] - acc[best] > 0.01:
        return second, best, (f"{second} (runner-up by correlation) retrains {100 * (acc[second] - acc[best]):.1f} "
                              f"points better on the held-out slice than {best}")
    return best, second, f"highest null-corrected correlation; runner-up {second}"


# ------------------------------------------------------------------------------------ phases
def settings_phase(args) -> str:
    jobs = [("settings", arm, s, "search", [*SEARCH, *ov]) for arm, ov in SETTINGS.items() for s in SETTINGS_SEEDS]
    run_many(jobs, args)
    rows = {arm: signal_row(r) for arm, r in load_runs("settings").items()}
    winner, runner_up, why = choose_settings(rows)
    (RESULTS / "settings" / "choice.json").write_text(json.dumps(
        {"winner": winner, "runner_up": runner_up, "why": why, "overrides": SETTINGS.get(winner)}, indent=1) + "\n")
    print(f"settings: winner {winner} ({why})", file=sys.stderr, flush=True)
    return winner


def evidence_phase(args, winner: str) -> None:
    chosen = SETTINGS[winner]
    search = [*chosen, "search.retrain_epochs=2"]
    seeds: list[int] = []
    while len(seeds) < 24 and time.time() < args.deadline_at:
        block = list(range(len(seeds) + 1, len(seeds) + 9))
        seeds += block
        run_many([("evidence", a, s, "search", [*search, f"strategy={a}"]) for s in block for a in ("hybrid", "random")], args)
        primary = ["random", "uniform_lora_eqparams"]
        if rule_arm():  # the adopted hybrid rule, paired with the paper's reading (issue 15, Deliver 4),
            name, overrides = rule_arm()  # and the best single criterion joins the primary arms with it
            best = best_single_criterion(winner)
            run_many([("evidence", name, s, "search", [*search, "strategy=hybrid", *overrides]) for s in block]
                     + [("evidence", f"single_{best}", s, "search",
                         [*search, "strategy=single", f"strategy.criterion={best}"]) for s in block], args)
            primary += [name, f"single_{best}"]
        lora = []
        for s in block:
            hyb = RESULTS / "evidence" / f"hybrid-s{s}" / outputs.SUMMARY
            if hyb.exists():
                params = json.loads(hyb.read_text())["params"]["peft"]
                lora.append(("evidence", "uniform_lora_eqparams", s, "baseline",
                             ["method=lora", "size_to_budget=true", f"budget.params={params}", "budget.percent=null",
                              "train.epochs=2"]))
        run_many(lora, args)
        runs = load_runs("evidence")
        widths = [paired(runs, a, "hybrid", "train_heldout") for a in primary]
        if all(w is not None and w[1] <= 1.0 for w in widths):
            break
    descriptive = [("evidence", "none", s, "search", [*search, "strategy=none"]) for s in range(1, 6)]
    descriptive += [("evidence", "uniform_adapter", s, "baseline", ["method=adapter", "size_to_budget=true",
                                                                    "train.epochs=2"]) for s in range(1, 6)]
    run_many(descriptive, args)


def descriptive_phase(args, winner: str) -> None:
    """5 seeds each: the best single criterion of the settings study on SST-2, the rank-level and
    Light-PEFT arms (issue "Light-PEFT in the house"), and a second task (CoLA)."""
    search = [*SETTINGS[winner], "search.retrain_epochs=2"]
    best = best_single_criterion(winner)
    jobs = [("evidence", f"single_{best}", s, "search", [*search, "strategy=single", f"strategy.criterion={best}"])
            for s in range(1, 6)]
    jobs += [("evidence", arm, s, "search", [*search, *ov]) for s in range(1, 6) for arm, ov in GRANULARITY_ARMS.items()]
    jobs += [("evidence_cola", a, s, "search", ["task=cola", *search, f"strategy={a}"])
             for s in range(1, 6) for a in ("hybrid", "random")]
    run_many(jobs, args)
    lora = []
    for s in range(1, 6):
        hyb = RESULTS / "evidence_cola" / f"hybrid-s{s}" / outputs.SUMMARY
        if hyb.exists():
            params = json.loads(hyb.read_text())["params"]["peft"]
            lora.append(("evidence_cola", "uniform_lora_eqparams", s, "baseline",
                         ["task=cola", "method=lora", "size_to_budget=true", f"budget.params={params}",
                          "budget.percent=null", "train.epochs=2"]))
    run_many(lora, args)


def best_single_criterion(winner: str) -> str:
    """The criterion with the highest mean correlation at the chosen settings (settings seeds only)."""
    row = signal_row(load_runs("settings").get(winner, {}))
    scored = {c: v[0] for c, v in row["per_criterion"].items() if v is not None and c != "random"}
    return max(scored, key=scored.get) if scored else "weight"


# ------------------------------------------------------------------------------------ report
def _fmt_ci(x, scale: float = 1.0, digits: int = 3) -> str:
    if x is None:
        return "—"
    if len(x) == 3 and isinstance(x[2], int):
        return f"{scale * x[0]:.{digits}f} ± {scale * x[1]:.{digits}f} (n={x[2]})"
    return f"{x[0]:+.2f} [{x[1]:+.2f}, {x[2]:+.2f}]"


def report() -> str:
    lines = []
    rows = {arm: signal_row(r) for arm, r in load_runs("settings").items()}
    if rows:
        lines += ["### Settings study (search signal; seeds " + ", ".join(map(str, SETTINGS_SEEDS)) + ")", "",
                  "| arm | rounds | Spearman(p, −importance) | null (random) | corrected | reliability | decision pct | learned nothing | dev acc | held-out acc |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for arm, r in sorted(rows.items(), key=lambda kv: -(kv[1]["corrected"] or -9)):
            lines.append(f"| {arm} | {r['rounds']} | {_fmt_ci(r['combined'])} | {_fmt_ci(r['null'])} | "
                         f"{r['corrected']:+.2f} | {_fmt_ci(r['reliability'])} | {_fmt_ci(r['decision_percentile'], 100, 0)} | "
                         f"{r['learned_nothing']} | {_fmt_ci(r['dev'], 100, 1)} | {_fmt_ci(r['heldout'], 100, 1)} |")
        crits = sorted({c for r in rows.values() for c in r["per_criterion"]})
        lines += ["", "Per criterion (Fisher mean [95 %] over seeds × rounds):", "",
                  "| arm | " + " | ".join(crits) + " |", "|---|" + "---|" * len(crits)]
        for arm, r in rows.items():
            lines.append(f"| {arm} | " + " | ".join(_fmt_ci(r["per_criterion"].get(c)) for c in crits) + " |")
        choice = RESULTS / "settings" / "choice.json"
        if choice.exists():
            c = json.loads(choice.read_text())
            lines += ["", f"Chosen: **{c['winner']}** ({c['why']})."]
    for study in ("evidence", "evidence_cola"):
        lines += evidence_table(study)
    lines += grid_table()
    lines += grid_table("rules", RULES_SEEDS)
    choice = choose_rule()
    if choice:
        d = choice["paired_pct_diff"]
        lines += ["", f"Best rule (lowest mean decision percentile, {len(choice['seeds'])} seeds): "
                      f"**{choice['winner']}**; against {choice['base']}: "
                      + ("—" if d is None else f"{100 * d[0]:+.0f} ± {100 * d[1]:.0f} percentile points (paired, 95 %)")
                      + f"; decision: {choice['decision']} (default {choice['default']})"]
    return "\n".join(lines)


def evidence_table(study: str) -> list[str]:
    """Mean ± 95 % of the primary metric per arm, and paired differences to hybrid with the MDE."""
    lines: list[str] = []
    runs = load_runs(study)
    if runs:
        metric = next(iter(next(iter(runs.values())).values()))["summary"]["primary"]["metric"]
        lines += ["", f"### {study} (retrained, 2 epochs; {metric} in points)", "",
                  "| arm | n | dev | held-out 5k | Δ held-out vs hybrid (paired, 95 %) | Δ dev vs hybrid | MDE (80 %) | PEFT % |",
                  "|---|---|---|---|---|---|---|---|"]
        order = ["hybrid", "random", "uniform_lora_eqparams", "none", "uniform_adapter"]
        for arm in order + sorted(set(runs) - set(order)):
            if arm not in runs:
                continue
            dev = mean_ci([accuracy(r["summary"], "validation") for r in runs[arm].values()])
            held = mean_ci([accuracy(r["summary"], "train_heldout") for r in runs[arm].values()])
            dh = paired(runs, arm, "hybrid", "train_heldout") if arm != "hybrid" else None
            dd = paired(runs, arm, "hybrid", "validation") if arm != "hybrid" else None
            pct = statistics.mean(r["summary"]["params"]["percent"] for r in runs[arm].values())
            lines.append(f"| {arm} | {len(runs[arm])} | {_fmt_ci(dev, 100, 1)} | {_fmt_ci(held, 100, 1)} | "
                         f"{_fmt_ci(dh, 1, 2)} | {_fmt_ci(dd, 1, 2)} | {f'{mde(dh[1]):.2f}' if dh else '—'} | {pct:.3f} |")
    return lines


# ------------------------------------------------------------------------------------ BENCHMARKS' tables
# `--report --section <name>` prints exactly one of BENCHMARKS.md's tables (tests/test_benchmarks_tables.py).
SETTINGS_LABELS = {"demo": "demo (old default)"}
EVIDENCE_LABELS = [("hybrid", "**hybrid** (PrunePEFT, the paper's reading)"), ("random", "random"),
                   ("uniform_lora_eqparams", "uniform LoRA, equal params (sized to hybrid's run)"),
                   ("none", "none (supernet, no pruning)"), ("uniform_adapter", "uniform adapter, equal budget"),
                   ("single_weight", "single criterion (weight, the study's best)")]


def settings_section() -> list[str]:
    """§8.3: the settings study. Correlations: Fisher mean [95 %] over seeds × rounds; decision pct:
    mean ± 95 % (t) over rounds; dev and held-out: mean ± 95 % (t) over the 3 seeds."""
    rows = {arm: signal_row(r) for arm, r in load_runs("settings").items()}

    def ci(x):
        return "—" if x is None else f"{x[0]:+.2f} [{x[1]:+.2f}, {x[2]:+.2f}]".replace("-", "\u2212")

    def t95(x, scale, digits):
        return "—" if x is None else f"{scale * x[0]:.{digits}f} ± {scale * x[1]:.{digits}f}"

    lines = ["| arm | rounds | Spearman(p, −importance) [95 %] | null (random) [95 %] | corrected | reliability [95 %] | "
             "decision pct (mean ± 95 % over rounds) | learned nothing (rounds) | dev (mean ± 95 %, 3 seeds) | "
             "held-out (mean ± 95 %, 3 seeds) |", "|---|---|---|---|---|---|---|---|---|---|"]
    for arm, r in sorted(rows.items(), key=lambda kv: -(kv[1]["corrected"] or -9)):
        lines.append(f"| {SETTINGS_LABELS.get(arm, arm)} | {r['rounds']} | {ci(r['combined'])} | {ci(r['null'])} | "
                     + f"{r['corrected']:+.2f}".replace("-", "\u2212") + f" | {ci(r['reliability'])} | "
                     f"{t95(r['decision_percentile'], 100, 0)} | {r['learned_nothing']} | {t95(r['dev'], 100, 1)} | "
                     f"{t95(r['heldout'], 100, 1)} |")
    return lines


def evidence_section() -> list[str]:
    """§8.4: stage B on the H200 (dev and held-out mean ± sd; Δ paired mean ± 95 %)."""
    from benchmarks.lib import report_tables as t

    return t.arm_table("evidence", EVIDENCE_LABELS, ["n", "ratio", "dev", "held", "dd", "dh", "mde", "pct"])


def rules_section() -> list[str]:
    """§11.1: every rule cell of the rules study (round 1, seeds 301-310) and the reference rows."""
    from benchmarks.lib.rules_study import rules_table

    return rules_table()


SECTIONS = {"settings": settings_section, "evidence": evidence_section, "rules": rules_section}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--study", choices=["settings", "evidence", "descriptive", "grid", "rules", "all"], default="all")
    ap.add_argument("--winner", help="evidence only: the settings arm to use (default: settings/choice.json)")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--deadline", type=float, default=1e9, help="seconds after which no new run starts")
    ap.add_argument("--run-timeout", type=float, default=3600, help="seconds one run may take")
    ap.add_argument("--work", default=str(ROOT / "outputs" / "signal_study"))
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("--extra", nargs="*", default=[], help="overrides for every run (e.g. model.local=...)")
    ap.add_argument("--seeds", type=int, nargs="*", help="rules only: these seeds instead of the study's")
    ap.add_argument("--report", action="store_true")
    ap.add_argument("--section", choices=sorted(SECTIONS), help="with --report: print only this BENCHMARKS table")
    args = ap.parse_args()
    if args.report and args.section:
        print("\n".join(SECTIONS[args.section]()))
        return
    if args.report:
        print(report())
        return
    args.deadline_at = time.time() + args.deadline
    winner = args.winner
    if args.study in ("settings", "all"):
        winner = settings_phase(args)
    if args.study in ("evidence", "all"):
        winner = winner or json.loads((RESULTS / "settings" / "choice.json").read_text())["winner"]
        evidence_phase(args, winner)
    if args.study == "grid":
        grid_phase(args, SETTINGS[winner or json.loads((RESULTS / "settings" / "choice.json").read_text())["winner"]])
    if args.study == "rules":
        rules_phase(args, SETTINGS[winner or json.loads((RESULTS / "settings" / "choice.json").read_text())["winner"]])
    if args.study in ("descriptive", "all"):
        winner = winner or json.loads((RESULTS / "settings" / "choice.json").read_text())["winner"]
        descriptive_phase(args, winner)
    print(report())

