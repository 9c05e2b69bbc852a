"""Stage-B comparisons that fit on a CPU: retrained accuracy of paired seeds, committed under
`benchmarks/results/confirm_cpu/<arm>-s<seed>/`.

The stage-B settings of the search-signal study (MiniLM-L6, SST-2 2k, the fixed 5k held-out slice,
the chosen `keep` settings, a 2-epoch retrain), with the diagnostics OFF (they change nothing the
search decides, `test_diagnostics_change_nothing_the_search_decides`, and would double the CPU time).
Every arm is paired by seed with `hybrid`, the paper's reading.

- `confirm` (issue "A hybrid that earns its name", Deliver 3): the hybrid rule the rules study
  adopted (`rules/choice.json`, `signal_study.rule_arm`) against the paper's reading.
- `stageb` (issue "A hybrid that earns its name", Deliver 4, on CPU): the adopted rule with stage B's
  other primary arms, random, the best single criterion and uniform LoRA at hybrid's parameter
  count, paired with hybrid (signal_study's sequential rule: blocks of 8 seeds until every 95 %
  half-width is <= 1 point, or 24 seeds).
- `granularity` (issue "Light-PEFT in the house", Deliver 5, accuracy at equal params): hybrid
  with rank-level pruning (`search.granularity=rank`, fills B to within one rank), and the
  Light-PEFT arm warm-started (its own recipe) and fresh-initialised (like our retrain).
- `alternatives`: `search.warmup.assign=consensus` (free) against the adopted `agreement` (a masked
  pass per unit and snapshot), both with zscore; descriptive, no default changes.

    python -m benchmarks.cpu_stage_b --phase all --workers 2 --deadline 6000
    python -m benchmarks.cpu_stage_b --phase granularity --arms light_peft --seeds 1 2 3 4 5
    python -m benchmarks.cpu_stage_b --phase stageb --seeds 1 2 3 4 5 6 7 8 --workers 2   # issue 15 Deliver 4 on CPU
    python -m benchmarks.cpu_stage_b --phase next --workers 2     # the next block of every contrast still open
    python -m benchmarks.cpu_stage_b --phase alternatives --workers 2    # consensus against agreement
    python -m benchmarks.cpu_stage_b --report          # the paired table, rebuilt from the committed files
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from benchmarks.lib import signal_study as s  # one runner, one results layout, one set of statistics
from prunepeft.run import outputs  # the run-file names
from prunepeft.analysis.stats import bootstrap_ci, mean_sd

STUDY = "confirm_cpu"
BASE = [*s.SETTINGS["keep"], "search.retrain_epochs=2"]


def consensus_arm() -> tuple[str, list[str]] | None:
    """`consensus` decided as well as `agreement` (§11.1: 5 ± 16 percentile points behind) at no cost;
    the `alternatives` phase checks it by retrained accuracy, under the adopted rule's combination."""
    if not s.rule_arm():
        return None
    combo = next(o.split("=", 1)[1] for o in s.rule_arm()[1] if o.startswith("strategy.combine="))
    name = f"hybrid_consensus_{combo}"
    return name, ["search.warmup.assign=consensus", f"strategy.combine={combo}", f"arm={name}"]


def arms(phase: str) -> dict[str, list[str]]:
    """{arm: overrides after BASE} of one phase; `hybrid` (the pairing base) is in every phase."""
    out = {"hybrid": ["strategy=hybrid"]}
    if phase in ("confirm", "stageb", "alternatives", "all") and s.rule_arm():
        name, overrides = s.rule_arm()
        out[name] = ["strategy=hybrid", *overrides]
    if phase in ("stageb", "all"):  # stage B's other primary search arms (signal_study.evidence_phase)
        out["random"] = ["strategy=random"]
        best = s.best_single_criterion("keep")
        out[f"single_{best}"] = ["strategy=single", f"strategy.criterion={best}"]
    if phase in ("granularity", "all"):
        out.update(s.GRANULARITY_ARMS)
    if phase in ("alternatives", "all") and s.rule_arm():  # the free warm-up rule against the adopted one
        name, overrides = consensus_arm()
        out[name] = ["strategy=hybrid", *overrides]
    return out


def jobs(phase: str, seeds: list[int], only: list[str] | None = None) -> list[tuple]:
    """Seed-major, so that whatever finishes before the deadline is a set of complete pairs
    (`only`: these arms of the phase, e.g. to run the pairs that matter most first)."""
    return [(STUDY, arm, seed, "search", [*BASE, *ov]) for seed in seeds for arm, ov in arms(phase).items()
            if not only or arm in only]


def lora_jobs(seeds: list[int]) -> list[tuple]:
    """Stage B's uniform LoRA at each hybrid run's parameter count (after the hybrid runs exist)."""
    out = []
    for seed in seeds:
        hyb = s.RESULTS / STUDY / f"hybrid-s{seed}" / outputs.SUMMARY
        if hyb.exists():
            params = json.loads(hyb.read_text())["params"]["peft"]
            out.append((STUDY, "uniform_lora_eqparams", seed, "baseline",
                        ["method=lora", "size_to_budget=true", f"budget.params={params}", "budget.percent=null",
                         "train.epochs=2"]))
    return out


# Decision rules, fixed before the runs they judge (committed at the start of those runs).
NONINFERIORITY = 1.0  # points of held-out accuracy: stage B's precision target (95 % half-width <= 1 point)
MIN_PAIRS = 8


def heldout_bootstrap(runs: dict, arm: str, base: str) -> tuple | None:
    """Seed bootstrap of the paired held-out difference arm − base (points) over their common seeds."""
    seeds = sorted(set(runs.get(arm, {})) & set(runs.get(base, {})))
    return bootstrap_ci([100 * (s.accuracy(runs[arm][x]["summary"], "train_heldout")
                                - s.accuracy(runs[base][x]["summary"], "train_heldout")) for x in seeds])


def decide(arm: str, base: str = "hybrid", runs: dict | None = None) -> dict:
    """Judge `arm` against `base` by the paired held-out difference (points, 95 % interval).

    `better`: the interval lies above 0; `non-inferior`: its lower end is above -NONINFERIORITY;
    `worse`: it lies below 0; `inconclusive` otherwise, or with fewer than MIN_PAIRS pairs.
    """
    runs = s.load_runs(STUDY) if runs is None else runs
    d = s.paired(runs, arm, base, "train_heldout")
    boot = heldout_bootstrap(runs, arm, base)
    out = {"arm": arm, "base": base, "paired_heldout": d, "paired_heldout_bootstrap": boot, "n": d[2] if d else 0}
    if d is None or d[2] < MIN_PAIRS:
        return out | {"verdict": "inconclusive", "why": f"fewer than {MIN_PAIRS} paired seeds"}
    low, high = d[0] - d[1], d[0] + d[1]
    verdict = ("better" if low > 0 else "worse" if high < 0 else
               "non-inferior" if low > -NONINFERIORITY else "inconclusive")
    return out | {"verdict": verdict, "why": f"95 % interval [{low:+.2f}, {high:+.2f}] points"}


def decisions(runs: dict | None = None) -> dict[str, dict]:
    """The two defaults these runs decide, by rules fixed before the runs:
    - issue 15, Deliver 3: the `scale=cpu` presets take the adopted hybrid rule when it is at least
      non-inferior to the paper's reading in retrained accuracy (it already wins on decisions);
    - issue 14, Deliver 1: `search.granularity` becomes `rank` only when rank-level pruning is
      `better` (stage B's committed runs use `unit`, so a switch must pay for their comparability).
    """
    out = {}
    if s.rule_arm():
        r = decide(s.rule_arm()[0], runs=runs)
        out["hybrid_rule"] = r | {"adopt_on_cpu": r["verdict"] in ("better", "non-inferior")}
    r = decide("hybrid_rank", runs=runs)
    out["granularity"] = r | {"default": "rank" if r["verdict"] == "better" else "unit"}
    if s.rule_arm():
        # Descriptive (no default changes): does the free rule retrain as well as the adopted one?
        r = decide(consensus_arm()[0], base=s.rule_arm()[0], runs=runs)
        out["consensus"] = r | {"free_alternative_confirmed": r["verdict"] in ("better", "non-inferior")}
    return out


# Stage B's sequential rule (signal_study.evidence_phase), applied per contrast on CPU, where one seed of
# every arm costs about 35 CPU-minutes: a contrast with hybrid stops at the first whole block of 8 seeds
# (seeds 1..8b) whose 95 % half-width is <= HALF_WIDTH_TARGET points, or at MAX_SEEDS; only contrasts
# still open get the next block (with hybrid, their pair). Fixed before seeds 5-8 of random and single
# weight and every LoRA run had finished (seeds 1-4 of those two, and the agreement arm's seeds 1-10 of
# Deliver 3, were committed already: the rule was applied to that contrast afterwards).
HALF_WIDTH_TARGET = 1.0
BLOCK = 8
MAX_SEEDS = 24


def primary_arms() -> list[str]:
    """Stage B's primary arms besides hybrid (issue 15, Deliver 4): the adopted rule, random, the best
    single criterion and uniform LoRA at hybrid's parameter count."""
    rule = [s.rule_arm()[0]] if s.rule_arm() else []
    return [*rule, "random", f"single_{s.best_single_criterion('keep')}", "uniform_lora_eqparams"]


def sequential_status(runs: dict | None = None) -> dict[str, dict]:
    """Per primary arm: the whole blocks it has with hybrid, and whether its contrast has stopped.

    `blocks` = the largest b with seeds 1..8b all paired; `stopped_at` = the first such block whose
    half-width over seeds 1..8b meets the target (or MAX_SEEDS), else None; `next_seeds` = the seeds
    of the block to run next (empty once stopped).
    """
    runs = s.load_runs(STUDY) if runs is None else runs
    out = {}
    for arm in primary_arms():
        common = set(runs.get(arm, {})) & set(runs.get("hybrid", {}))
        blocks, stopped, widths = 0, None, []
        while blocks * BLOCK < MAX_SEEDS and set(range(1, (blocks + 1) * BLOCK + 1)) <= common:
            blocks += 1
            sub = {a: {x: r for x, r in runs[a].items() if x <= blocks * BLOCK} for a in (arm, "hybrid")}
            d = s.paired(sub, arm, "hybrid", "train_heldout")
            widths.append(float(d[1]))
            if d[1] <= HALF_WIDTH_TARGET or blocks * BLOCK >= MAX_SEEDS:
                stopped = blocks * BLOCK
                break
        nxt = [] if stopped else list(range(blocks * BLOCK + 1, (blocks + 1) * BLOCK + 1))
        out[arm] = {"blocks": blocks, "half_widths": widths, "stopped_at": stopped, "next_seeds": nxt}
    return out


def next_block_jobs(runs: dict | None = None) -> tuple[list[tuple], list[int]]:
    """The search jobs of every open contrast's next block (hybrid first, seed-major), and the seeds
    whose uniform-LoRA partner must follow once hybrid has run."""
    status = sequential_status(runs)
    wanted = {a: set(st["next_seeds"]) for a, st in status.items()}
    wanted["hybrid"] = set().union(*wanted.values())  # every open block runs with its pair
    jobs_ = [(STUDY, a, x, "search", [*BASE, *ov]) for x in sorted(wanted["hybrid"])
             for a, ov in arms("stageb").items() if x in wanted.get(a, ())]
    return jobs_, sorted(wanted.get("uniform_lora_eqparams", ()))


def stage_b_table(runs: dict | None = None) -> list[str]:
    """BENCHMARKS §11.2's table: hybrid and every primary arm over the seeds of the whole blocks the
    sequential rule stopped at (1..8b), mean ± sd per arm and paired Δ to hybrid."""
    runs = s.load_runs(STUDY) if runs is None else runs
    status = sequential_status(runs)
    last = max((st["stopped_at"] or st["blocks"] * BLOCK) for st in status.values())
    if not last:
        return []
    lines = [f"Stage B, seeds 1-{last}:", "",
             "| arm | n | PEFT params | dev (mean ± sd) | held-out 5k (mean ± sd) | Δ held-out vs hybrid "
             "(paired, 95 %) | seed bootstrap | Δ dev |", "|---|---|---|---|---|---|---|---|"]
    for arm in ["hybrid", *primary_arms()]:
        sub = {a: {x: r for x, r in runs.get(a, {}).items() if x <= last} for a in (arm, "hybrid")}
        seeds = sorted(set(sub[arm]) & set(sub["hybrid"]))
        if len(seeds) < 2:
            continue
        peft = [sub[arm][x]["summary"]["params"]["peft"] for x in seeds]
        dev, held = ([100 * s.accuracy(sub[arm][x]["summary"], split) for x in seeds]
                     for split in ("validation", "train_heldout"))
        row = [arm, str(len(seeds)), f"{min(peft) / 1e3:.0f}k–{max(peft) / 1e3:.0f}k",
               "{:.1f} ± {:.1f}".format(*mean_sd(dev)), "{:.1f} ± {:.1f}".format(*mean_sd(held))]
        if arm == "hybrid":
            row += ["—", "—", "—"]
        else:
            dh, dd = (s.paired(sub, arm, "hybrid", split) for split in ("train_heldout", "validation"))
            b = heldout_bootstrap(sub, arm, "hybrid")
            row += [f"{dh[0]:+.2f} ± {dh[1]:.2f}", f"[{b[1]:+.2f}, {b[2]:+.2f}]", f"{dd[0]:+.2f} ± {dd[1]:.2f}"]
        lines.append("| " + " | ".join(row) + " |")
    return lines


def rule_pairings(runs: dict | None = None) -> list[str]:
    """Deliver 4's pairings of the adopted rule: Δ held-out against every other stage-B arm."""
    runs = s.load_runs(STUDY) if runs is None else runs
    if not s.rule_arm() or s.rule_arm()[0] not in runs:
        return []
    rule = s.rule_arm()[0]
    lines = [f"| {rule} against | n | Δ held-out (paired, 95 %) | seed bootstrap |", "|---|---|---|---|"]
    for other in ["hybrid", *[a for a in primary_arms() if a != rule]]:
        d = s.paired(runs, rule, other, "train_heldout")
        if d is None:
            continue
        b = heldout_bootstrap(runs, rule, other)
        lines.append(f"| {other} | {d[2]} | {d[0]:+.2f} ± {d[1]:.2f} | "
                     + (f"[{b[1]:+.2f}, {b[2]:+.2f}] |" if b else "— |"))
    return lines


# ------------------------------------------------------------------------------------ BENCHMARKS' tables
# `--report --section <name>` prints exactly one of BENCHMARKS.md's tables (tests/test_benchmarks_tables.py).
RULE_LABEL = "hybrid, agreement + zscore"
LORA_LABEL = "uniform LoRA, equal params (sized to hybrid's run)"
B_PARAMS = 170_349  # 0.75 % of MiniLM-L6's 22,713,216


def section(name: str) -> list[str]:
    from benchmarks.lib import report_tables as t

    if name == "confirm":  # §11.1: the adopted rule against the paper's reading, every paired seed
        return t.arm_table(STUDY, [("hybrid", "hybrid, the paper's reading"), ("hybrid_agreement_zscore", RULE_LABEL)],
                           ["n", "dev", "held", "dh", "boot", "dd"],
                           header={"dh": "Δ held-out (paired, mean ± 95 %)", "dd": "Δ dev (paired, mean ± 95 %)"})
    if name == "stageb":  # §11.2: stage B on CPU, the seeds of the first whole block
        return t.arm_table(STUDY, [("hybrid", "**hybrid**, the paper's reading"),
                                   ("hybrid_agreement_zscore", f"**{RULE_LABEL}** (the CPU default)"),
                                   ("random", "random"), ("single_weight", "single criterion, `weight`"),
                                   ("uniform_lora_eqparams", LORA_LABEL)],
                           ["n", "params", "ratio", "dev", "held", "dh", "boot", "dd"], seeds=range(1, BLOCK + 1))
    if name == "pairings":  # §11.2: the adopted rule paired with every other arm (Δ = rule − arm)
        return t.against_table(STUDY, "hybrid_agreement_zscore", "agreement + zscore against",
                               [("hybrid", "hybrid, the paper's reading"), ("random", "random"),
                                ("single_weight", "single `weight`"), ("uniform_lora_eqparams", LORA_LABEL)],
                               ["n", "ratio", "dh", "boot"])
    if name == "granularity":  # §10.3: unit vs rank pruning vs the Light-PEFT arm
        return t.arm_table(STUDY, [("hybrid", "hybrid, unit pruning"),
                                   ("hybrid_rank", "hybrid, `search.granularity=rank`"),
                                   ("light_peft", "`strategy=light_peft` (warm retrain, its recipe)"),
                                   ("light_peft_fresh", "`strategy=light_peft`, `search.retrain_init=fresh`")],
                           ["n", "params_gap", "minutes", "dev", "held", "dh", "boot", "dd"],
                           seeds=range(1, BLOCK + 1), budget=B_PARAMS)
    if name == "consensus":  # §11.2: the free warm-up rule paired with the others (Δ = consensus − arm)
        return t.against_table(STUDY, "hybrid_consensus_zscore", "consensus + zscore against",
                               [("hybrid_agreement_zscore", "agreement + zscore (the CPU default)"),
                                ("hybrid", "hybrid, the paper's reading"), ("random", "random"),
                                ("uniform_lora_eqparams", LORA_LABEL)], ["n", "dh", "boot", "dd"])
    raise SystemExit(f"unknown section {name!r}; one of {', '.join(SECTIONS)}")


SECTIONS = ("confirm", "stageb", "pairings", "granularity", "consensus")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--phase", choices=["confirm", "stageb", "next", "granularity", "alternatives", "all"], default="all",
                    help="next: the next block of 8 seeds of every stage-B contrast still open (sequential rule; "
                         "it picks its own seeds and arms)")
    ap.add_argument("--seeds", type=int, nargs="*", default=list(range(1, 9)))
    ap.add_argument("--arms", nargs="*", help="only these arms of the phase (default: all, hybrid included)")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--deadline", type=float, default=1e9, help="seconds after which no new run starts")
    ap.add_argument("--run-timeout", type=float, default=3600, help="seconds one run may take")
    ap.add_argument("--work", default=str(s.ROOT / "outputs" / "cpu_stage_b"))
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("--report", action="store_true")
    ap.add_argument("--section", choices=SECTIONS, help="with --report: print only this BENCHMARKS table")
    args = ap.parse_args()
    args.extra = []
    if args.report and args.section:
        print("\n".join(section(args.section)))
        return
    if not args.report:
        args.deadline_at = time.time() + args.deadline
        if args.phase == "next":
            search_jobs, lora_seeds = next_block_jobs()
            s.run_many(search_jobs, args)
            s.run_many(lora_jobs(lora_seeds), args)
        else:
            s.run_many(jobs(args.phase, args.seeds, args.arms), args)
            if args.phase in ("stageb", "all") and (not args.arms or "uniform_lora_eqparams" in args.arms):
                s.run_many(lora_jobs(args.seeds), args)
    print("\n".join(s.evidence_table(STUDY)))
    print("\n".join(["", *stage_b_table(), "", *rule_pairings()]))
    for arm, st in sequential_status().items():
        print(f"sequential rule, {arm} vs hybrid: {st['blocks']} whole block(s), half-widths "
              f"{[round(w, 2) for w in st['half_widths']]}; "
              + (f"stopped at {st['stopped_at']} seeds" if st["stopped_at"] else f"next seeds {st['next_seeds']}"))
    for name, d in decisions().items():
        boot = d["paired_heldout_bootstrap"]
        print(f"{name}: {d['verdict']} (n={d['n']}; {d['why']}"
              + (f"; seed bootstrap [{boot[1]:+.2f}, {boot[2]:+.2f}]" if boot else "") + ")")

