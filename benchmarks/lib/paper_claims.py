"""Decide the paper's claims (a)-(d) from a runs directory by benchmarks/rules/paper_claims.md.

    python -m benchmarks.paper_claims runs=benchmarks/results/tables_cpu

prints one verdict line per claim: (a) PrunePEFT ≥ the best uniform PEFT at equal budget, (a') at
equal parameters, (b) hybrid > random and > type-matched random, (c) hybrid > the best single
criterion, (d) search ≤ 0.3 × retrain in wall-clock. Each metric claim gives its paired mean
difference (points, ×100), the 95 % t interval and n pairs, or "undecided (n=…, detectable ≥ …
points)" below 3 pairs. The runs are read by `prunepeft.report.collect` (summary.json, run.json),
one configuration per arm (`report.configs`), the learning rate per (arm, task) as the tables pick it.
"""
from __future__ import annotations

import math
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pandas as pd
from scipy.stats import t as student_t

from prunepeft.report.aggregate import select_lr
from prunepeft.report.chance import at_chance, chance_bound
from prunepeft.report.collect import BASELINE_LABELS, DECODER_FAMILIES, collect_runs
from prunepeft.report.configs import split_variants
from prunepeft.analysis.stats import mde, mean_ci

MIN_PAIRS = 3  # fewer: undecided
PRIOR_SD = 0.9  # sd of the paired differences (points) from the committed stage-B evidence
MARGIN = 1.0  # non-inferior: the interval's lower end above -MARGIN points
RATIO, RATIO_MAX = 0.3, 0.5  # claim (d): median <= 0.3 and no run above 0.5
UNIFORM = ("adapter", "lora", "dora")  # Table 2's uniform methods, in tie-break order
PAIR = ("model", "task", "seed", "subset")
COLUMNS = ("command", "label", "method", "strategy", "criterion", "model", "task", "seed", "params_peft",
           "search_over_retrain")


@dataclass
class Verdict:
    claim: str
    text: str
    verdict: str  # supported | not supported | undecided | met | not met
    detail: str
    # the reading without pairs where both arms are at chance (the rules' amendment of 2026-12-05); "" when
    # no pair was at chance, so that it would say the same
    informative: str = ""

    def line(self) -> str:
        main = f"({self.claim}) {self.text}: {self.verdict}" + (f" {self.detail}" if self.detail else "")
        return main + (f"\n    {self.informative}" if self.informative else "")


def load(root: str | Path) -> pd.DataFrame:
    """Finished encoder runs with `points` (×100), `subset` and one learning rate per (arm, task), as the tables."""
    runs = collect_runs(root)
    if runs.empty:
        return pd.DataFrame(columns=[*COLUMNS, "points", "subset", "budget_params", "variant", "chance"])
    d = runs[runs["complete"] & runs["value"].notna() & runs["transfer_kind"].isna()
             & ~runs["family"].isin(DECODER_FAMILIES)].copy()  # Table 3's random-weight decoder: plumbing only
    d = split_variants(d)
    d, _ = select_lr(d, ("model", "label", "variant", "task"))
    keys = d["config_keys"].map(lambda c: c if isinstance(c, dict) else {})
    bounds = [chance_bound(str(r.task), str(r.metric), str(r.split), k.get("data.eval_subset"))
              for r, k in zip(d.itertuples(), keys)]
    return d.assign(points=d["value"].astype(float) * 100, subset=keys.map(lambda c: c.get("data.train_subset", "?")),
                    budget_params=keys.map(lambda c: c.get("budget.params", "null")),
                    chance=[math.nan if b is None else 100 * b for b in bounds])


def one_config(arm: pd.DataFrame) -> pd.DataFrame:
    """The arm's runs in its most-run configuration (variant): two configurations are never pooled."""
    if arm.empty or arm["variant"].nunique() <= 1:
        return arm
    return arm[arm["variant"] == arm["variant"].value_counts().idxmax()]


def per_pair(arm: pd.DataFrame) -> pd.Series:
    """points per (model, task, seed, subset); a repeated seed's runs are averaged."""
    return arm.groupby(list(PAIR))["points"].mean() if not arm.empty else pd.Series(dtype=float)


def differences(a: pd.DataFrame, b: pd.DataFrame) -> list[float]:
    """a − b per pair where both finished (same model, task, seed and training subset)."""
    pa, pb = per_pair(a), per_pair(b)
    return [float(pa[k] - pb[k]) for k in sorted(set(pa.index) & set(pb.index), key=str)]


def both_at_chance(x: float, y: float, bound: float, metric: str) -> bool:
    """Both arms' points inside the no-signal range of their dev split (NaN bound: unknown, never at chance)."""
    bound = None if bound != bound else bound
    return at_chance(x, bound, metric) and at_chance(y, bound, metric)


def informative_only(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    """b's runs without the pairs where both a and b are at chance (report.chance): two runs that both show no
    evidence of learning the task say nothing about which configuration learns it better."""
    if a.empty or b.empty:
        return b
    pa, pb = per_pair(a), per_pair(b)
    first = a.groupby(list(PAIR))[["chance", "metric"]].first()
    drop = {k for k in set(pa.index) & set(pb.index)
            if both_at_chance(pa[k], pb[k], first.loc[k, "chance"], str(first.loc[k, "metric"]))}
    return b[[k not in drop for k in zip(*(b[c] for c in PAIR))]]


def with_informative(v: Verdict, n_all: int, informative: list[float], rule: str, what: str) -> Verdict:
    """`v` with the reading without chance-level pairs beside it, where that drops any pair."""
    dropped = n_all - len(informative)
    if dropped:
        verdict, detail = decide(informative, rule, what)
        differ = "" if verdict == v.verdict else f"; the verdicts differ: the pre-registered one ({v.verdict}) rests on chance-level pairs"
        v.informative = (f"without the {dropped} pair(s) where both arms are at chance (sensitivity, not the "
                         f"pre-registered verdict): {verdict} {detail}{differ}")
    return v


def detectable(diffs: list[float]) -> float:
    """The smallest effect (points) this design detects: 80 % power, 5 % two-sided, the runs' sd or PRIOR_SD."""
    ci = mean_ci([x for x in diffs if x == x])  # NaN: a planned pair (n=0)
    if ci is not None and ci[1] > 0:
        return mde(ci[1])
    n = max(1, len(diffs))
    return mde(1.96 * PRIOR_SD / math.sqrt(n)) if n < 2 else mde(student_t.ppf(0.975, n - 1) * PRIOR_SD / math.sqrt(n))


def decide(diffs: list[float], rule: str, what: str) -> tuple[str, str]:
    """(verdict, detail) of paired differences under `rule` (better | noninferior)."""
    n = len(diffs)
    if n == 0:  # what the smallest deciding design (3 pairs) would detect
        return "undecided", f"(n=0, detectable ≥ {detectable([math.nan] * MIN_PAIRS):.1f} points at {MIN_PAIRS} pairs)"
    if n < MIN_PAIRS:
        return "undecided", f"(n={n}, detectable ≥ {detectable(diffs):.1f} points)"
    mean, half, _ = mean_ci(diffs)
    low, high = mean - half, mean + half
    detail = f"— {what} {mean:+.2f} points, 95 % [{low:+.2f}, {high:+.2f}], n={n} pairs"
    if rule == "better":
        if low > 0:
            return "supported", detail + " (better: lower end > 0)"
        if high < 0:
            return "not supported", detail + " (worse: upper end < 0)"
    else:
        if low > -MARGIN:
            worse = "; worse: upper end < 0" if high < 0 else ""
            return "supported", detail + f" (non-inferior: lower end > −{MARGIN:g}{worse})"
        if high < -MARGIN:
            return "not supported", detail + f" (inferior: upper end < −{MARGIN:g})"
    return "undecided", detail + f" (detectable ≥ {detectable(diffs):.1f} points)"


def best_of(hybrid: pd.DataFrame, candidates: dict[str, pd.DataFrame]) -> tuple[Optional[str], str]:
    """The candidate with the highest mean over the same pairs with hybrid (benchmarks/rules/paper_claims.md:
    chosen after the runs, which favours it). "The same pairs" are those every candidate shares with hybrid, so
    that a candidate whose harder-task runs have not finished is not ranked on its easier ones alone; where the
    candidates share no pair, each is ranked over its own pairs, and the listing says so."""
    ph = per_pair(hybrid)
    own = {name: set(per_pair(arm).index) & set(ph.index) for name, arm in candidates.items()}
    own = {name: keys for name, keys in own.items() if keys}
    if not own:
        return None, ""
    common = set.intersection(*own.values())
    means = {name: statistics.fmean(float(per_pair(candidates[name])[k]) for k in (common or keys))
             for name, keys in own.items()}
    best = max(means, key=lambda k: means[k])  # first in the candidates' order on a tie
    listed = "; ".join(f"{k} {v:.1f}" for k, v in sorted(means.items(), key=lambda kv: -kv[1]))
    return best, listed if common else listed + " (no pair common to all: each over its own pairs)"


def claims(d: pd.DataFrame) -> list[Verdict]:
    """The verdicts of benchmarks/rules/paper_claims.md on the runs `load` returns."""
    search, base = d[d["command"] == "search"], d[d["command"] == "baseline"]
    hybrid = one_config(search[search["label"] == "PrunePEFT"])
    out = []

    # Table 2's rows by label: "LoRA" is sized to the budget; "LoRA, equal parameters" (a') and Table 5's
    # "LoRA, equal compute" are other comparisons and never pooled into it.
    uniform = {m: one_config(base[(base["label"] == BASELINE_LABELS[m]) & base["budget_params"].isin(["null", None])])
               for m in UNIFORM}
    best, listed = best_of(hybrid, uniform)
    other, what = uniform[best] if best else base.iloc[0:0], f"hybrid − {best}"
    diffs = differences(hybrid, other)
    v, detail = decide(diffs, "noninferior", what)
    v = Verdict("a", "PrunePEFT ≥ the best uniform PEFT at equal budget", v,
                detail + (f"; best uniform by mean over the pairs: {listed}" if listed else missing(hybrid, uniform, "uniform")))
    out.append(sensitivity(v, len(diffs), hybrid, uniform, "noninferior"))

    diffs, what = equal_params(hybrid, base), "hybrid − LoRA (hybrid's parameters)"
    out.append(with_informative(Verdict("a'", "PrunePEFT ≥ uniform LoRA at equal parameters",
                                        *decide(diffs, "noninferior", what)),
                                len(diffs), equal_params(hybrid, base, informative=True), "noninferior", what))

    for label, text in (("Random pruning", "hybrid > random"), ("Random, type-matched", "hybrid > type-matched random")):
        other, what = one_config(search[search["label"] == label]), f"hybrid − {label.lower()}"
        diffs = differences(hybrid, other)
        out.append(with_informative(Verdict("b", text, *decide(diffs, "better", what)), len(diffs),
                                    differences(hybrid, informative_only(hybrid, other)), "better", what))

    singles = {c: one_config(g) for c, g in search[search["strategy"] == "single"].groupby("criterion")}
    best, listed = best_of(hybrid, singles)
    other = singles[best] if best else search.iloc[0:0]
    diffs = differences(hybrid, other)
    v, detail = decide(diffs, "better", f"hybrid − single {best}")
    v = Verdict("c", "hybrid > the best single criterion", v,
                detail + (f"; singles by mean over the pairs: {listed}" if listed else missing(hybrid, singles, "single-criterion")))
    out.append(sensitivity(v, len(diffs), hybrid, singles, "better", prefix="single "))

    out.append(cost_verdict(search[search["label"] == "PrunePEFT"]["search_over_retrain"].dropna().tolist()))
    return out


def sensitivity(v: Verdict, n_all: int, hybrid: pd.DataFrame, candidates: dict[str, pd.DataFrame], rule: str,
                prefix: str = "") -> Verdict:
    """`v` with the reading without chance-level pairs, the best candidate chosen again over the pairs kept."""
    kept = {name: informative_only(hybrid, arm) for name, arm in candidates.items()}
    best, _ = best_of(hybrid, kept)
    diffs = differences(hybrid, kept[best]) if best else []
    return with_informative(v, n_all, diffs, rule, f"hybrid − {prefix}{best}")


def missing(hybrid: pd.DataFrame, others: dict[str, pd.DataFrame], what: str) -> str:
    """Why no comparison was made: which side has no finished runs, or that they share no (task, seed) pair."""
    have = [a for a in others.values() if not a.empty]
    if hybrid.empty and not have:
        return f"; no PrunePEFT runs and no {what} runs yet"
    if hybrid.empty:
        return "; no PrunePEFT runs yet"
    if not have:
        return f"; no {what} runs yet"
    return f"; no (task, seed) where both PrunePEFT and a {what} run finished"


def equal_params(hybrid: pd.DataFrame, base: pd.DataFrame, informative: bool = False) -> list[float]:
    """hybrid − the uniform LoRA sized to that hybrid run's found parameters: Table 2's "LoRA, equal parameters"
    (`match_params`), or a LoRA run given budget.params = its params.peft (the stage-B arms); `informative`:
    without the pairs where both are at chance (see `differences`)."""
    lora = base[base["method"] == "lora"]
    matched = lora["match_params"].map(lambda m: str(m["params"]) if isinstance(m, dict) else None) \
        if "match_params" in lora else pd.Series(None, index=lora.index, dtype=object)
    diffs = []
    for row in hybrid.itertuples():
        if row.params_peft != row.params_peft:  # NaN: no parameter count recorded
            continue
        count = str(int(row.params_peft))
        match = lora[(lora["model"] == row.model) & (lora["task"] == row.task) & (lora["seed"] == row.seed)
                     & (lora["subset"] == row.subset) & ((lora["budget_params"] == count) | (matched == count))]
        if not match.empty and not (informative and both_at_chance(row.points, match["points"].mean(), row.chance,
                                                                   str(row.metric))):
            diffs.append(float(row.points - match["points"].mean()))
    return diffs


def cost_verdict(ratios: list[float]) -> Verdict:
    """(d): met if the median search/retrain ≤ 0.3 and no run > 0.5; not met if the median > 0.3."""
    text = "search ≤ 0.3 × retrain, wall-clock"
    if not ratios:
        return Verdict("d", text, "undecided", "(n=0 PrunePEFT runs with a cost record)")
    med, top = statistics.median(ratios), max(ratios)
    detail = f"— median search/retrain {med:.2f}, max {top:.2f}, n={len(ratios)} runs"
    if med > RATIO:
        return Verdict("d", text, "not met", detail + f" (median > {RATIO:g})")
    if top > RATIO_MAX:
        return Verdict("d", text, "undecided", detail + f" (median ≤ {RATIO:g}, but a run > {RATIO_MAX:g})")
    return Verdict("d", text, "met", detail + f" (median ≤ {RATIO:g}, every run ≤ {RATIO_MAX:g})")


def main(argv: list[str]) -> int:
    args = dict(a.split("=", 1) for a in argv if "=" in a)
    if "runs" not in args or any("=" not in a for a in argv):
        print("usage: python -m benchmarks.paper_claims runs=<dir>", file=sys.stderr)
        return 2
    if not Path(args["runs"]).is_dir():
        print(f"error: runs={args['runs']} is not a directory", file=sys.stderr)
        return 2
    print(f"Claims of arXiv 2506.07587 by benchmarks/rules/paper_claims.md, runs under {args['runs']}:")
    for verdict in claims(load(args["runs"])):
        print(verdict.line())
    return 0

