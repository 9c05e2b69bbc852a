"""Search-signal study (settings) and evidence (hybrid vs random vs uniform LoRA), with committed results.

Every run is `prunepeft search|baseline` in its own process with an explicit `hydra.run.dir`; its
small files (run.json, summary.json, found_config.json, warmup.json, rounds.jsonl, overrides.json)
are copied to `benchmarks/results/<study>/<arm>-s<seed>/`. A run already there is skipped; one whose
recorded overrides differ from the arm's is refused. `--report` rebuilds every number from there.

Studies (MiniLM-L6, SST-2 2k, the fixed 5k held-out slice of SST-2 train, diagnostics on):

- `settings`: arms varying reinit (paper / keep), steps per round (d = 512, 1024, the full 2k), the
  round learning rate, k and the type-offset option; seeds 101-103 (disjoint from the evidence).
  The winner is chosen by a rule fixed before the runs (`choose_settings`): the highest
  null-corrected Spearman of the combined p, unless the runner-up's retrained held-out accuracy is
  more than 1 point higher.
- `evidence`: at the chosen settings, paired seeds of hybrid, random and uniform LoRA at the hybrid
  run's parameter count, added in blocks of 8 until every difference to hybrid has a 95 % interval
  of ±1.0 point or 24 seeds; then descriptive arms with 5 seeds.

    python benchmarks/signal_study.py --study all --workers 8 --deadline 500
    python benchmarks/signal_study.py --report
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Optional, Sequence

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from prunepeft.report.signal import fisher_mean, mde, mean_ci  # noqa: E402  (one implementation of the statistics)

RESULTS = ROOT / "benchmarks" / "results"
SMALL_FILES = ("run.json", "summary.json", "found_config.json", "warmup.json", "rounds.jsonl", "DONE")

COMMON = ["task=sst2", "model=minilm_l6", "train=cpu", "train.max_length=64", "data.train_subset=2000",
          "data.heldout=5000", "budget.percent=0.75", "train.progress=false"]
SEARCH = ["search.diagnostics.enabled=true", "search.retrain_epochs=2"]
DEMO = ["search.reinit=paper", "search.fidelity=low", "search.warmup.subset=512", "search.k=4",
        "search.type_norm=none"]


def _arm(base: list[str], **changes: str) -> list[str]:
    """`base` overrides with some keys changed (a later override of the same key replaces it)."""
    out: dict[str, str] = {}
    for o in base:
        out[o.split("=", 1)[0]] = o
    out.update({k: f"{k}={v}" for k, v in changes.items()})
    return list(out.values())


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
# The hybrid-rule grid (issue "A hybrid that earns its name", Deliver 1): round 1 of the chosen
# settings, every assignment x combination judged on the same trained state; seeds 201-210.
GRID = ["search.diagnostics.enabled=true", "search.diagnostics.grid=true", "search.diagnostics.warmup=false",
        "search.diagnostics.probe=256", "search.diagnostics.random_sets=20", "search.max_rounds=1",
        "search.retrain_epochs=0"]
GRID_SEEDS = list(range(201, 211))
# Choosing the CPU defaults of the hybrid rules (issue "A hybrid that earns its name", Deliver 3):
# the same round-1 grid, on seeds disjoint from the evidence (1-24) and grid (201-210) seeds, with
# the warm-up run under `assign=agreement` so that it measures importances and every warm-up rule
# (tendency, consensus, agreement) is judged on the same trained state (rule:<r> rows of the grid).
RULES = [*GRID, "search.warmup.assign=agreement"]
RULES_SEEDS = list(range(301, 311))


# ------------------------------------------------------------------------------------ running
def run_one(study: str, arm: str, seed: int, command: str, overrides: list[str], args) -> dict | None:
    """Run one (arm, seed) unless its results are committed; return its summary (None on failure)."""
    dest = RESULTS / study / f"{arm}-s{seed}"
    record = {"command": command, "overrides": overrides}
    if (dest / "summary.json").exists():
        old = json.loads((dest / "overrides.json").read_text())
        if old != record:
            raise SystemExit(f"{dest} holds a run with other overrides: {old} != {record}; remove it or rename the arm")
        return json.loads((dest / "summary.json").read_text())
    work = Path(args.work) / study / f"{arm}-s{seed}"
    cmd = [args.python, "-m", "prunepeft.cli", command, *_arm(COMMON + overrides, **dict(o.split("=", 1) for o in args.extra)),
           f"seed={seed}", f"hydra.run.dir={work}"]
    started = time.time()
    if _finished_with(work, cmd[4:]):  # finished after an earlier orchestrator died: collect, don't rerun
        return _collect(work, dest, record)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"},
                              timeout=args.run_timeout)
    except subprocess.TimeoutExpired:
        print(f"TIMEOUT {study}/{arm}-s{seed} after {args.run_timeout}s", file=sys.stderr, flush=True)
        return None
    if proc.returncode != 0 or not (work / "summary.json").exists():
        print(f"FAILED {study}/{arm}-s{seed} ({proc.returncode}):\n{proc.stderr[-3000:]}", file=sys.stderr, flush=True)
        return None
    print(f"{study}/{arm}-s{seed}: {time.time() - started:.0f}s", file=sys.stderr, flush=True)
    return _collect(work, dest, record)


def _finished_with(work: Path, argv: list[str]) -> bool:
    """A finished run in `work` whose recorded command line is `argv` (run.json's argv)."""
    try:
        run = json.loads((work / "run.json").read_text())
    except (OSError, ValueError):
        return False
    return (work / "summary.json").exists() and run.get("status") == "done" and run.get("argv", [])[1:] == argv


def _collect(work: Path, dest: Path, record: dict) -> dict:
    """Copy a finished run's small files to its committed folder; return its summary."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in SMALL_FILES:
        if (work / name).exists():
            shutil.copy2(work / name, dest / name)
    (dest / "overrides.json").write_text(json.dumps(record, indent=1) + "\n")
    return json.loads((dest / "summary.json").read_text())


def run_many(jobs: list[tuple], args) -> list:
    """Run (study, arm, seed, command, overrides) jobs on `args.workers` processes, before the deadline."""
    def guarded(job):
        if time.time() > args.deadline_at:
            return None
        return run_one(*job, args)

    with ThreadPoolExecutor(max_workers=args.workers) as pool:
        return list(pool.map(guarded, jobs))


# ------------------------------------------------------------------------------------ statistics
def load_runs(study: str) -> dict[str, dict[int, dict]]:
    """{arm: {seed: {"summary":…, "rounds": […], "warmup": …}}} of the committed runs."""
    out: dict[str, dict[int, dict]] = {}
    for d in sorted((RESULTS / study).glob("*-s*")):
        if not (d / "summary.json").exists():
            continue
        arm, seed = d.name.rsplit("-s", 1)
        rounds = [json.loads(x) for x in (d / "rounds.jsonl").read_text().splitlines()] if (d / "rounds.jsonl").exists() else []
        out.setdefault(arm, {})[int(seed)] = {"summary": json.loads((d / "summary.json").read_text()), "rounds": rounds}
    return out


def accuracy(summary: dict, split: str) -> float | None:
    """The run's primary metric (accuracy for SST-2, MCC for CoLA) on `split`."""
    metric = summary.get("primary", {}).get("metric", "accuracy")
    return summary.get("metrics", {}).get(split, {}).get(metric)


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


def paired(runs: dict[str, dict[int, dict]], arm: str, base: str, split: str) -> tuple | None:
    """Paired difference arm − base over common seeds: (mean, ±95 %, n), in accuracy points."""
    seeds = sorted(set(runs.get(arm, {})) & set(runs.get(base, {})))
    diffs = [100 * (accuracy(runs[arm][s]["summary"], split) - accuracy(runs[base][s]["summary"], split)) for s in seeds]
    return mean_ci(diffs)


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
            hyb = RESULTS / "evidence" / f"hybrid-s{s}" / "summary.json"
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
    """5 seeds each: the best single criterion of the settings study on SST-2, and a second task (CoLA)."""
    search = [*SETTINGS[winner], "search.retrain_epochs=2"]
    best = best_single_criterion(winner)
    jobs = [("evidence", f"single_{best}", s, "search", [*search, "strategy=single", f"strategy.criterion={best}"])
            for s in range(1, 6)]
    jobs += [("evidence_cola", a, s, "search", ["task=cola", *search, f"strategy={a}"])
             for s in range(1, 6) for a in ("hybrid", "random")]
    run_many(jobs, args)
    lora = []
    for s in range(1, 6):
        hyb = RESULTS / "evidence_cola" / f"hybrid-s{s}" / "summary.json"
        if hyb.exists():
            params = json.loads(hyb.read_text())["params"]["peft"]
            lora.append(("evidence_cola", "uniform_lora_eqparams", s, "baseline",
                         ["task=cola", "method=lora", "size_to_budget=true", f"budget.params={params}",
                          "budget.percent=null", "train.epochs=2"]))
    run_many(lora, args)


def grid_phase(args, winner: str) -> None:
    """Round 1 of the chosen settings with the rule grid, one run per seed."""
    run_many([("grid", "hybrid", s, "search", [*SETTINGS[winner], *GRID]) for s in GRID_SEEDS], args)


def rules_phase(args, winner: str) -> None:
    """Round 1 with every warm-up rule in the grid, one run per seed (Deliver 3's choice)."""
    seeds = args.seeds or RULES_SEEDS
    run_many([("rules", "hybrid", s, "search", [*SETTINGS[winner], *RULES]) for s in seeds], args)
    choice = choose_rule()
    if choice:
        (RESULTS / "rules" / "choice.json").write_text(json.dumps(
            {k: v for k, v in choice.items() if k != "paired_pct_diff"}
            | {"paired_pct_diff": [float(x) for x in choice["paired_pct_diff"] or []]}, indent=1) + "\n")


def rule_arm() -> Optional[tuple[str, list[str]]]:
    """Stage B's arm for the rule the rules study adopted: (arm name, overrides), or None when the
    paper's reading stays the default (Deliver 4: a PRIMARY arm paired with hybrid)."""
    path = RESULTS / "rules" / "choice.json"
    if not path.exists():
        return None
    choice = json.loads(path.read_text())
    if choice.get("decision") != "adopt":
        return None
    rule, combo = choice["default"].removeprefix("rule:").split("|")
    name = f"hybrid_{rule}_{combo}"
    return name, [f"search.warmup.assign={rule}", f"strategy.combine={combo}", f"arm={name}"]


def grid_cells(study: str) -> dict[str, dict[int, dict[str, float]]]:
    """cell name -> seed -> {corrected, pct, spread, key} of a grid study's round 1."""
    out: dict[str, dict[int, dict[str, float]]] = {}
    for seed, run in load_runs(study).get("hybrid", {}).items():
        for r in run["rounds"][:1]:
            d = r.get("diagnostics") or {}
            null = d.get("spearman_null")
            for name, c in (d.get("grid") or {}).get("cells", {}).items():
                out.setdefault(name, {})[seed] = {
                    "corrected": None if c["spearman"] is None or null is None else c["spearman"] - null,
                    "pct": c["decision_percentile"], "spread": c["spread"], "key": c["key_spearman"]}
    return out


def choose_rule(study: str = "rules", base: str = "rule:tendency|paper") -> Optional[dict]:
    """The usable rule (a warm-up rule x a combination) with the lowest mean decision percentile,
    with its paired difference to the paper's reading (`base`) over the study's seeds.

    The rule fixed before the runs: the CPU default changes to the best rule only if its paired
    difference to `base` has a 95 % interval entirely below 0 ("adopt"); otherwise the paper's
    reading stays the default ("keep")."""
    cells = grid_cells(study)
    usable = {n: v for n, v in cells.items() if n.startswith("rule:") and len(v) >= 2}
    if base not in usable:
        return None
    ranked = sorted(usable, key=lambda n: (statistics.mean(x["pct"] for x in usable[n].values()), n))
    best = ranked[0]
    seeds = sorted(set(usable[best]) & set(usable[base]))
    diff = mean_ci([usable[best][s]["pct"] - usable[base][s]["pct"] for s in seeds])
    adopt = best != base and diff is not None and diff[0] + diff[1] < 0
    return {"winner": best, "base": base, "seeds": seeds, "ranking": ranked,
            "decision": "adopt" if adopt else "keep", "default": best if adopt else base,
            "mean_pct": {n: statistics.mean(x["pct"] for x in usable[n].values()) for n in ranked},
            "paired_pct_diff": diff}


def grid_table(study: str = "grid", seeds: Sequence[int] = GRID_SEEDS) -> list[str]:
    """Per assignment x combination: mean over seeds of the null-corrected Spearman and the decision pct."""
    cells: dict[str, dict[str, list]] = {}
    for seed, run in load_runs(study).get("hybrid", {}).items():
        for r in run["rounds"]:
            d = r.get("diagnostics") or {}
            null = d.get("spearman_null")
            for name, c in (d.get("grid") or {}).get("cells", {}).items():
                acc = cells.setdefault(name, {"corrected": [], "pct": [], "spread": [], "key": []})
                if c["spearman"] is not None and null is not None:
                    acc["corrected"].append(c["spearman"] - null)
                acc["pct"].append(c["decision_percentile"])
                acc["spread"].append(c["spread"])
                acc["key"].append(c["key_spearman"])
    if not cells:
        return []
    lines = ["", f"### Hybrid rules on one trained state ({study}: round 1, seeds {seeds[0]}-{seeds[-1]})", "",
             "| assignment | combination | corrected Spearman | decision pct | key-level Spearman | spread of key ρ |",
             "|---|---|---|---|---|---|"]

    def fmt(v, scale=1.0, digits=2):
        m = mean_ci([x for x in v if x is not None])
        return "—" if m is None else f"{scale * m[0]:+.{digits}f} ± {scale * m[1]:.{digits}f} (n={m[2]})"

    for name in sorted(cells, key=lambda n: (not n.startswith("rule:"), n.split("|")[0] != "argmax", n)):
        rule, combo = name.split("|")
        c = cells[name]
        lines.append(f"| {rule} | {combo} | {fmt(c['corrected'])} | {fmt(c['pct'], 100, 0)} | {fmt(c['key'])} | "
                     f"{fmt(c['spread'])} |")
    return lines


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
    args = ap.parse_args()
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
        grid_phase(args, winner or json.loads((RESULTS / "settings" / "choice.json").read_text())["winner"])
    if args.study == "rules":
        rules_phase(args, winner or json.loads((RESULTS / "settings" / "choice.json").read_text())["winner"])
    if args.study in ("descriptive", "all"):
        winner = winner or json.loads((RESULTS / "settings" / "choice.json").read_text())["winner"]
        descriptive_phase(args, winner)
    print(report())


if __name__ == "__main__":
    main()
