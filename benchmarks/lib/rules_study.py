"""The hybrid-rule studies (issue "A hybrid that earns its name"): the assignment x combination grid
on one trained state (Deliver 1, `grid`) and the choice of the CPU default by decision quality on
disjoint seeds (Deliver 3, `rules`), with the committed choice and the stage-B arm it adds.

Run through `python -m benchmarks.signal_study --study grid|rules`; results under `benchmarks/results/{grid,rules}/`.
"""
from __future__ import annotations

import json
import statistics
from typing import Optional, Sequence

from benchmarks.lib.study_runner import RESULTS, load_runs, mean_ci, run_many

from prunepeft.analysis.stats import bootstrap_ci

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


def grid_phase(args, settings: list[str]) -> None:
    """Round 1 of the chosen settings (their overrides) with the rule grid, one run per seed."""
    run_many([("grid", "hybrid", s, "search", [*settings, *GRID]) for s in GRID_SEEDS], args)


def rules_phase(args, settings: list[str]) -> None:
    """Round 1 with every warm-up rule in the grid, one run per seed (Deliver 3's choice)."""
    seeds = args.seeds or RULES_SEEDS
    run_many([("rules", "hybrid", s, "search", [*settings, *RULES]) for s in seeds], args)
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
    diffs = [usable[best][s]["pct"] - usable[base][s]["pct"] for s in seeds]
    diff = mean_ci(diffs)
    adopt = best != base and diff is not None and diff[0] + diff[1] < 0
    return {"winner": best, "base": base, "seeds": seeds, "ranking": ranked,
            "decision": "adopt" if adopt else "keep", "default": best if adopt else base,
            "mean_pct": {n: statistics.mean(x["pct"] for x in usable[n].values()) for n in ranked},
            "paired_pct_diff": diff,
            # the seed-bootstrap interval beside the t interval the decision rule was fixed on
            "paired_pct_diff_bootstrap": bootstrap_ci(diffs)}


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




# ------------------------------------------------------------------------------------ BENCHMARKS' table
RULE_ASSIGNMENTS = ("tendency", "consensus", "agreement")
COMBOS = ("paper", "rank", "zscore", "reference")
REFERENCE_ROWS = [("permuted|paper", "permuted (S_H's criteria shuffled)", "paper"),
                  ("random|paper", "random criterion per key", "paper"),
                  *[(f"const:{c}|paper", f"const: {c}", "paper")
                    for c in ("weight", "activation", "threshold", "zeros", "taylor", "gradient")],
                  ("oracle|zscore", "oracle (upper bound)", "zscore")]


def rules_table(study: str = "rules", base: str = "rule:tendency|paper") -> list[str]:
    """BENCHMARKS §11.1: all 12 warm-up rule x combination cells of the rules study's round 1, then the
    reference rows. Decision pct and the paired Δ to the paper's reading are in percentile points;
    every ± is a 95 % t half-width over the seeds."""
    cells = grid_cells(study)
    if base not in cells:
        return []
    path = RESULTS / study / "choice.json"
    adopted = json.loads(path.read_text()).get("default") if path.exists() else None

    def num(x: float, digits: int) -> str:
        return f"{x:+.{digits}f}".replace("-", "\u2212")

    def ci(values: list, scale: float, digits: int, sign: bool) -> str:
        m = mean_ci([v for v in values if v is not None])
        if m is None:
            return "—"
        centre = num(scale * m[0], digits) if sign else f"{scale * m[0]:.{digits}f}"
        return f"{centre} ± {scale * m[1]:.{digits}f}"

    lines = ["| assignment | combination | decision pct (mean ± 95 %) | Δ pct vs the paper's reading (paired, mean ± 95 %) "
             "| corrected Spearman (mean ± 95 %) | key-level Spearman (mean ± 95 %) | spread of key ρ |",
             "|---|---|---|---|---|---|---|"]
    rows = [(f"rule:{a}|{c}", a, c) for a in RULE_ASSIGNMENTS for c in COMBOS] + REFERENCE_ROWS
    for name, assignment, combo in rows:
        if name not in cells:
            continue
        per = cells[name]
        seeds = sorted(per)
        if name == base:
            assignment, combo, delta = f"**{assignment} (the paper's reading)**", f"**{combo} (Eq. 1)**", "—"
        else:
            common = sorted(set(per) & set(cells[base]))
            delta = ci([per[x]["pct"] - cells[base][x]["pct"] for x in common], 100, 2, True)
            if name == adopted:
                assignment, combo = f"**{assignment} (adopted)**", f"**{combo}**"
        spread = statistics.mean(per[x]["spread"] for x in seeds)
        lines.append(f"| {assignment} | {combo} | {ci([per[x]['pct'] for x in seeds], 100, 2, False)} | {delta} | "
                     f"{ci([per[x]['corrected'] for x in seeds], 1, 2, True)} | "
                     f"{ci([per[x]['key'] for x in seeds], 1, 2, True)} | {spread:.2f} |")
    return lines
