"""The hybrid-rule grid at the correlation level, recomputed from committed `rounds.jsonl` files.

Every diagnosed round of the committed settings study recorded each criterion's scores and each
unit's ground-truth importance, so every assignment × combination rule of
`prunepeft.analysis.rule_grid` can be re-scored offline (Spearman with −importance, null-corrected
by the round's random criterion; key-level Spearman; spread of key ρ). The decision-level
percentile needs masked passes on the trained state and comes only from in-run grids
(`search.diagnostics.grid=true`, `python -m benchmarks.signal_study --study grid`).

    python -m benchmarks.hybrid_grid_offline --arms keep keep_z keep_high keep_z_high keep_lr3e-3 keep_k2 keep_d1024
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]  # the repository (benchmarks/lib/ is two below it)

from prunepeft.peft.units import parse_unit_key
from prunepeft.analysis.diagnostics import prunability_correlation
from prunepeft.pruning.partitions import Partition
from prunepeft.analysis.rule_grid import (
    COMBINATIONS,
    key_level_correlation,
    criterion_spread,
    assignments,
    combined_scores,
    oracle_assignment,
)
from prunepeft.pruning.scoring import CriterionScores
from prunepeft.analysis.stats import bootstrap_ci, mean_ci
from prunepeft.run import outputs  # the run-file names

# Draws of the `permuted` and `random` assignments per round: the 100 (offline they cost no
# masked pass; the in-run grid keeps rule_grid.DRAWS = 5).
OFFLINE_DRAWS = 100


def snapshot_from_json(criteria: dict) -> dict[str, CriterionScores]:
    """Rebuild a round's scored snapshot from its `rounds.jsonl` row."""
    def conv(d: dict) -> dict:
        return {parse_unit_key(k): float(v) for k, v in d.items()}

    return {name: CriterionScores(name, conv(c["raw"]), conv(c["oriented"]), conv(c["normalised"]), conv(c["rank"]),
                                  bool(c["degenerate"])) for name, c in criteria.items()}


def grid_for_round(row: dict, num_layers: int, k: int, seed: int, draws: int = OFFLINE_DRAWS) -> dict[str, dict]:
    """Per rule: Spearman (null-corrected), key-level Spearman and spread for one recorded round."""
    diag = row["diagnostics"]
    snapshot = snapshot_from_json(row["criteria"])
    importance = {parse_unit_key(u): float(v) for u, v in diag["importance"].items()}
    partition = Partition(num_layers)
    per_unit = {parse_unit_key(u): c[0] for u, c in row["combined"]["criteria"].items()}
    argmax = {partition.key(u): c for u, c in per_unit.items()}
    criteria = [c for c in snapshot if c != "random"]
    oracle = oracle_assignment(snapshot, partition, importance, criteria)
    keys = partition.keys(importance)
    rules = assignments(argmax, keys, criteria, oracle, np.random.default_rng(seed), draws)
    null = diag["spearman_null"] or 0.0
    out = {}
    for rule, rule_draws in rules.items():
        for combo in COMBINATIONS:
            corr, key_corr, spread = [], [], []
            for draw in rule_draws:
                units = {u: draw[partition.key(u)] for u in importance}
                p = combined_scores(combo, snapshot, units, k)
                corr.append(prunability_correlation(p, importance))
                key_corr.append(key_level_correlation(p, importance, partition))
                spread.append(criterion_spread(snapshot, units, partition))
            vals = [c for c in corr if c is not None]
            out[f"{rule}|{combo}"] = {"corrected": (np.mean(vals) - null) if vals else None,
                                      "key": np.mean([c for c in key_corr if c is not None] or [np.nan]),
                                      "spread": float(np.mean(spread))}
    return out


# The two contrasts (Deliver 1), and the hybrid against the best constant criterion.
CONTRASTS = {
    **{f"selection bias: argmax − permuted ({c})": (f"argmax|{c}", f"permuted|{c}") for c in COMBINATIONS},
    "scale mixing: paper − rank (random per key)": ("random|paper", "random|rank"),
    "scale mixing: paper − rank (permuted)": ("permuted|paper", "permuted|rank"),
    "argmax (paper) − const:weight": ("argmax|paper", "const:weight|paper"),
}


def run_contrasts(per_run: list[dict[str, float]]) -> dict[str, dict]:
    """Each CONTRASTS pair as a paired difference over runs (runs are the independent units; rounds
    of one run are not): t interval and seed bootstrap."""
    out = {}
    for name, (a, b) in CONTRASTS.items():
        diffs = [r[a] - r[b] for r in per_run if a in r and b in r]
        out[name] = {"t": mean_ci(diffs), "bootstrap": bootstrap_ci(diffs)}
    return out


# ------------------------------------------------------------------------------------ BENCHMARKS' tables
# `--report --section grid|contrasts` prints one of BENCHMARKS §11's tables from the committed JSON
# (no recomputation; tests/test_benchmarks_tables.py).
def _pm(x, digits: int = 2) -> str:
    return "—" if x is None else f"{x[0]:+.{digits}f} ± {x[1]:.{digits}f}".replace("-", "\u2212")


def report_section(name: str, path: Path) -> list[str]:
    data = json.loads(path.read_text())
    if name == "grid":
        cells = data["cells"]
        rules = sorted({n.split("|")[0] for n in cells}, key=lambda r: -cells[f"{r}|paper"]["corrected"][0])
        label = {"argmax": "**argmax τ (the paper's reading)**", "permuted": "permuted", "random": "random per key"}
        lines = ["| assignment (corrected Spearman, mean ± 95 % over rounds) | paper (Eq. 1) | rank | zscore | reference "
                 "| key-level (paper) | spread of key ρ |",
                 "|---|---|---|---|---|---|---|"]
        for r in rules:
            lab = label.get(r, r.replace("const:", "const: "))
            corr = [_pm(cells[f"{r}|{c}"]["corrected"]) for c in COMBINATIONS]
            lines.append(f"| {lab} | " + " | ".join(corr) + f" | {_pm(cells[f'{r}|paper']['key'])} | "
                         f"{cells[f'{r}|paper']['spread'][0]:.2f} |")
        return lines
    if name == "contrasts":
        lines = [f"| contrast (corrected Spearman; paired over the {data['runs']} runs) | mean ± 95 % (t) | "
                 "seed bootstrap 95 % |", "|---|---|---|"]
        for cname, c in data["contrasts"].items():
            b = c["bootstrap"]
            boot = "—" if b is None else f"[{b[1]:+.2f}, {b[2]:+.2f}]".replace("-", "\u2212")
            lines.append(f"| {cname} | {_pm(c['t'])} | {boot} |")
        return lines
    raise SystemExit(f"unknown section {name!r}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--study", default="settings")
    ap.add_argument("--arms", nargs="+", default=["keep"])
    ap.add_argument("--draws", type=int, default=OFFLINE_DRAWS, help="permuted / random draws per round")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "hybrid_grid_offline.json")
    ap.add_argument("--report", action="store_true", help="print from --out, recompute nothing")
    ap.add_argument("--section", choices=["grid", "contrasts"], default="grid", help="with --report: which table")
    args = ap.parse_args()
    if args.report:
        print("\n".join(report_section(args.section, args.out)))
        return
    cells: dict[str, dict[str, list]] = {}
    per_run: list[dict[str, float]] = []  # per run: each cell's mean corrected Spearman over its rounds
    rounds = 0
    for arm in args.arms:
        for run in sorted((ROOT / "benchmarks" / "results" / args.study).glob(f"{arm}-s*")):
            cfg = json.loads((run / outputs.RUN_JSON).read_text())["config"]
            num_layers = json.loads((run / outputs.FOUND_CONFIG).read_text())["num_layers"]
            run_cells: dict[str, list[float]] = {}
            for line in (run / outputs.ROUNDS).read_text().splitlines():
                row = json.loads(line)
                if "diagnostics" not in row or row.get("combined", {}).get("method") != "paper":
                    continue
                rounds += 1
                for name, v in grid_for_round(row, num_layers, int(cfg["search"]["k"]), int(cfg["seed"]),
                                                args.draws).items():
                    acc = cells.setdefault(name, {"corrected": [], "key": [], "spread": []})
                    for m in acc:
                        if v[m] is not None and not np.isnan(v[m]):
                            acc[m].append(float(v[m]))
                    if v["corrected"] is not None:
                        run_cells.setdefault(name, []).append(float(v["corrected"]))
            if run_cells:
                per_run.append({name: float(np.mean(v)) for name, v in run_cells.items()})
    summary = {name: {m: mean_ci(v) for m, v in c.items()} for name, c in cells.items()}
    contrasts = run_contrasts(per_run)
    args.out.write_text(json.dumps({"arms": args.arms, "rounds": rounds, "runs": len(per_run), "draws": args.draws,
                                    "cells": summary, "contrasts": contrasts}, indent=1) + "\n")
    print(f"{rounds} rounds from {args.study}/{{{','.join(args.arms)}}}\n")
    print("| assignment | combination | corrected Spearman (mean ± 95 %) | key-level Spearman | spread of key ρ |")
    print("|---|---|---|---|---|")

    def f(x, d=2):
        return "—" if x is None else f"{x[0]:+.{d}f} ± {x[1]:.{d}f}"

    for name in sorted(summary, key=lambda n: -(summary[n]["corrected"] or (-9,))[0]):
        rule, combo = name.split("|")
        s = summary[name]
        print(f"| {rule} | {combo} | {f(s['corrected'])} | {f(s['key'])} | {f(s['spread'])} |")
    print(f"\nPaired contrasts of corrected Spearman over the {len(per_run)} runs (each run's mean over its rounds):\n")
    print("| contrast | mean ± 95 % (t) | seed bootstrap 95 % |")
    print("|---|---|---|")
    for name, c in contrasts.items():
        b = c["bootstrap"]
        print(f"| {name} | {f(c['t'])} | " + ("—" if b is None else f"[{b[1]:+.2f}, {b[2]:+.2f}]") + " |")

