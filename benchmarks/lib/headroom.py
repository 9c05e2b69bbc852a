"""Headroom (issue 26): the envelope of random configurations at hybrid's parameter count, and the
masked_loss search arm, committed under `benchmarks/results/headroom/<arm>-s<seed>/`.

For each seed, N configurations are drawn from the 12 MiniLM-L6 units (6 layers x lora/adapter, any
types): uniformly among every subset whose parameter count is within HALF a LoRA unit (the smallest
unit: 24,576 / 2) of the hybrid's found configuration of that seed (`confirm_cpu/hybrid-s<seed>/found_config.json`),
as a seeded permutation of that set whose first N are taken (so N = 32 later extends N = 16). An adapter
(49,600) is about two LoRA units (2 x 24,576), so these are the configurations with hybrid's parameter
count up to ±1 unit's rounding: a unit more or fewer than hybrid's in number, the same count within 1 %
(seed 1: 123,776 -> 122,880-123,776). A window of a whole LoRA unit would be skewed: for seed 1, 41 % of
those subsets hold a LoRA unit MORE than hybrid (+20 % parameters) and only 3 % one fewer. Each is
written as `draws/s<seed>/env<j>/found_config.json` and retrained with stage B's recipe
(`prunepeft baseline method=found run=<that folder> train.epochs=2`, fresh units, the seed's seed), as the
arm `env<j>`. The `masked_loss` arm is stage B's search with the ground-truth criterion
(`strategy=single strategy.criterion=masked_loss`); `hybrid_masked_loss` is stage B's hybrid with it as a
seventh candidate (`search.criteria=[<Table 1's six>,masked_loss]`); `uniform_adapter_eqparams` is a
uniform adapter sized to hybrid's parameter count (`method=adapter size_to_budget=true`), the adapter
counterpart of stage B's uniform LoRA. Once two seeds' envelopes are finished, `top_s<s>` retrains the
draw of seed s with the best dev accuracy at a seed s′ whose hybrid has the same parameter count within 1 %
(the winner's-curse check of `benchmarks/rules/headroom.md`, H1). The hybrid and uniform-LoRA-at-equal-parameters runs
of confirm_cpu are copied in (`hybrid-s<seed>`, `uniform_lora_eqparams-s<seed>`: same files, nothing re-run),
so that `prunepeft report runs=benchmarks/results/headroom` rebuilds the whole table from one folder.

Every run is one process with one torch thread (OMP/MKL_NUM_THREADS=1); `--workers` run at once.

    PRUNEPEFT_DATA_DIR=/work/shared/data/glue python -m benchmarks.headroom --seeds 1 2 3 --n 16 --workers 1
    python -m benchmarks.headroom --report     # the table, rebuilt from the committed files
"""
from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np

from benchmarks.lib import cpu_stage_b as stage_b  # stage B's recipe: one runner, one results layout
from benchmarks.lib import study_runner as runner

from prunepeft.run import outputs

STUDY = "headroom"
HERE = runner.RESULTS / STUDY
SOURCE = runner.RESULTS / stage_b.STUDY  # confirm_cpu: hybrid's found configurations and the uniform baseline
REFERENCES = ("hybrid", "uniform_lora_eqparams")
DRAW_SEED = 26  # the draws' generator: default_rng([DRAW_SEED, seed])
TYPES = ("lora", "adapter")
# The default hybrid's six candidates (Table 1; `search.criteria`), to which hybrid_masked_loss adds masked_loss.
HYBRID_CRITERIA = ("weight", "zeros", "threshold", "activation", "taylor", "gradient")


def unit_templates() -> dict[str, dict]:
    """{type: {"sizes", "params"}} of MiniLM-L6's units, read from confirm_cpu's hybrid found configurations."""
    out: dict[str, dict] = {}
    for path in sorted(SOURCE.glob(f"hybrid-s*/{outputs.FOUND_CONFIG}")):
        for layer in json.loads(path.read_text())["layers"]:
            for unit in layer["units"]:
                out.setdefault(unit["type"], {"sizes": unit["sizes"], "params": int(unit["params"])})
    missing = [t for t in TYPES if t not in out]
    if missing:
        raise SystemExit(f"no {missing} unit in {SOURCE}/hybrid-s*/found_config.json to take its sizes from")
    return out


def feasible(target: int, layers: int, params: dict[str, int]) -> list[tuple[tuple[int, str], ...]]:
    """Every non-empty set of units whose parameter count is within half the smallest unit of `target`, in a fixed order."""
    units = [(layer, t) for layer in range(layers) for t in TYPES]
    tol = min(params.values()) / 2
    out = []
    for k in range(1, len(units) + 1):
        for combo in itertools.combinations(units, k):
            if abs(sum(params[t] for _, t in combo) - target) <= tol:
                out.append(combo)
    return out


def draws(seed: int, n: int) -> list[dict]:
    """The first n of a seeded permutation of the feasible sets of this seed: [{"units", "params"}]."""
    hybrid = json.loads((SOURCE / f"hybrid-s{seed}" / outputs.FOUND_CONFIG).read_text())
    templates = unit_templates()
    params = {t: templates[t]["params"] for t in TYPES}
    options = feasible(int(hybrid["params"]["peft"]), int(hybrid["num_layers"]), params)
    order = np.random.default_rng([DRAW_SEED, seed]).permutation(len(options))
    if n > len(options):
        raise SystemExit(f"seed {seed}: only {len(options)} configurations at hybrid's {hybrid['params']['peft']}")
    return [{"units": [f"{layer}:{t}" for layer, t in options[i]], "params": sum(params[t] for _, t in options[i]),
             "feasible": len(options)} for i in order[:n]]


def found_config(seed: int, units: list[str]) -> dict:
    """A found_config.json holding `units`, with the hybrid's model fields and the template sizes."""
    hybrid = json.loads((SOURCE / f"hybrid-s{seed}" / outputs.FOUND_CONFIG).read_text())
    templates = unit_templates()
    kept = {(int(u.split(":")[0]), u.split(":")[1]) for u in units}
    layers = [{"layer": layer, "units": [{"type": t, "sizes": templates[t]["sizes"], "params": templates[t]["params"]}
                                         for t in hybrid["search_space"] if (layer, t) in kept]}
              for layer in range(int(hybrid["num_layers"]))]
    peft = sum(templates[t]["params"] for _, t in kept)
    base = int(hybrid["params"]["base"])
    return {**hybrid, "units": [f"{layer}:{t}" for layer in range(int(hybrid["num_layers"]))
                                for t in hybrid["search_space"] if (layer, t) in kept],
            "layers": layers, "params": {**hybrid["params"], "peft": peft, "percent_of_base": 100.0 * peft / base}}


def write_draws(seed: int, n: int) -> list[tuple[str, str]]:
    """Write each draw's found_config.json (and draws.json); return [(arm, run folder relative to the repo)]."""
    folder = HERE / "draws" / f"s{seed}"
    out = []
    picked = draws(seed, n)
    for j, d in enumerate(picked):
        arm = f"env{j:02d}"
        dest = folder / arm / outputs.FOUND_CONFIG
        dest.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(found_config(seed, d["units"]), indent=2) + "\n"
        if dest.exists() and dest.read_text() != text:
            raise SystemExit(f"{dest} holds another draw; the draws are seeded and prefix-stable, so this is a bug")
        dest.write_text(text)
        out.append((arm, dest.parent.relative_to(runner.ROOT).as_posix()))
    (folder / "draws.json").write_text(json.dumps({"seed": seed, "draw_seed": [DRAW_SEED, seed], "draws": picked},
                                                  indent=1) + "\n")
    return out


def hybrid_params(seed: int) -> int:
    """The PEFT parameters of hybrid's found configuration of this seed (the envelope's and the uniform adapter's target)."""
    return int(json.loads((SOURCE / f"hybrid-s{seed}" / outputs.FOUND_CONFIG).read_text())["params"]["peft"])


def jobs(seeds: list[int], n: int, masked: bool = True) -> list[tuple]:
    """Seed-major: a seed's envelope, then its uniform adapter at hybrid's parameters, then the two
    masked_loss arms (alone, and as a seventh candidate of the hybrid)."""
    out = []
    for seed in seeds:
        for arm, folder in write_draws(seed, n):
            out.append((STUDY, arm, seed, "baseline", ["method=found", f"run={folder}", "train.epochs=2", f"arm={arm}"]))
        out.append((STUDY, "uniform_adapter_eqparams", seed, "baseline",
                    ["method=adapter", "size_to_budget=true", f"budget.params={hybrid_params(seed)}",
                     "budget.percent=null", "train.epochs=2", "arm=uniform_adapter_eqparams"]))
        if masked:
            out.append((STUDY, "masked_loss", seed, "search",
                        [*stage_b.BASE, "strategy=single", "strategy.criterion=masked_loss", "arm=masked_loss"]))
            out.append((STUDY, "hybrid_masked_loss", seed, "search",
                        [*stage_b.BASE, f"search.criteria=[{','.join(HYBRID_CRITERIA)},masked_loss]",
                         "arm=hybrid_masked_loss"]))
    return out


def partners(params: dict[int, int], tolerance: float = 0.01) -> list[tuple[int, int]]:
    """(s, s′) pairs whose hybrids' parameter counts agree within `tolerance` (benchmarks/rules/headroom.md, H1):
    the top of seed s is replicated at seed s′ only at equal parameters."""
    return [(s, o) for s in sorted(params) for o in sorted(params)
            if s != o and abs(params[s] - params[o]) <= tolerance * max(params[s], params[o])]


def top_draw(seed: int, n: int, here: Path = HERE) -> str | None:
    """The envelope draw of `seed` with the highest dev (validation) accuracy, ties to the lower index; None until
    all `n` draws are committed. Chosen on dev, judged on the held-out slice (rules H1)."""
    dev = {}
    for j in range(n):
        summary = here / f"env{j:02d}-s{seed}" / outputs.SUMMARY
        if not summary.exists():
            return None
        dev[f"env{j:02d}"] = float(json.loads(summary.read_text())["primary"]["value"])
    return max(dev, key=lambda arm: (dev[arm], -int(arm[3:])))


def replicate_jobs(seeds: list[int], n: int) -> list[tuple]:
    """`top_s<s>` at seed s′: the top of seed s's envelope retrained at a partner seed (rules H1)."""
    out = []
    for s, other in partners({s: hybrid_params(s) for s in seeds}):
        top = top_draw(s, n)
        if top is not None:
            folder = (HERE / "draws" / f"s{s}" / top).relative_to(runner.ROOT).as_posix()
            out.append((STUDY, f"top_s{s}", other, "baseline",
                        ["method=found", f"run={folder}", "train.epochs=2", f"arm=top_s{s}"]))
    return out


# ------------------------------------------------------------- the verdicts of benchmarks/rules/headroom.md
LORA = "uniform_lora_eqparams"
SEARCHES = ("hybrid", "masked_loss", "hybrid_masked_loss")
MARGIN = 1.0  # points: non-inferior, and the replicated top's lead that counts as headroom (rules H1)
TOP_QUARTER = 75.0


def _paired(rows, a: str, b: str) -> tuple[float, float, int] | None:
    """a − b over the seeds where both exist: (mean, 95 % half-width (nan at n = 1), n), or None."""
    from prunepeft.analysis.stats import mean_ci

    if a not in rows or b not in rows:
        return None
    diffs = [float(x - y) for x, y in zip(rows[a], rows[b]) if x == x and y == y and x is not None and y is not None]
    return mean_ci(diffs) or ((diffs[0], float("nan"), 1) if diffs else None)


def _fmt(d: tuple[float, float, int] | None) -> str:
    if d is None:
        return "no pair"
    return f"{d[0]:+.2f} (n=1)" if d[2] < 2 else f"{d[0]:+.2f} ± {d[1]:.2f} (95 %, n={d[2]})"


def _low(d) -> float:
    return float("nan") if d is None or d[2] < 2 else d[0] - d[1]


def verdicts(study: dict) -> list[str]:
    """H1–H3 of benchmarks/rules/headroom.md, one line each (H2 one per search arm), from
    `prunepeft.analysis.headroom.collect_headroom`'s study of one folder."""
    from prunepeft.analysis.headroom import seed_rows
    from prunepeft.analysis.stats import mde

    rows = seed_rows(study).set_index("seed")
    out = []
    lora_median, lora_best = _paired(rows, LORA, "median"), _paired(rows, LORA, "best")
    tops = {}  # target seed -> (arm, replicated top − that seed's LoRA)
    for arm in (m for m in study["markers"] if m.startswith("top_s")):
        for seed, (value, _) in study["markers"][arm].items():
            lora = study["markers"].get(LORA, {}).get(seed)
            if lora is not None:
                tops[(arm, seed)] = value - lora[0]
    replicated = "; ".join(f"{a} at seed {s} − LoRA {d:+.2f}" for (a, s), d in sorted(tops.items())) or "none yet"
    if len(tops) >= 2 and all(d > MARGIN for d in tops.values()):
        h1 = "headroom above uniform LoRA"
    elif tops and _low(lora_median) > -MARGIN and all(d <= MARGIN for d in tops.values()):
        h1 = "no headroom detected"
    else:
        h1 = "undecided"
    out.append(f"H1 headroom above uniform LoRA: {h1} — LoRA − envelope median {_fmt(lora_median)}, "
               f"LoRA − envelope best {_fmt(lora_best)}; replicated tops: {replicated}")
    for arm in SEARCHES:
        if arm not in rows or rows[arm].isna().all():
            continue
        pct = [float(p) for p in rows[f"{arm}_pct"].dropna()]
        to_median, to_lora = _paired(rows, arm, "median"), _paired(rows, arm, LORA)
        found = [w for w, ok in (("finds the top quarter", bool(pct) and min(pct) >= TOP_QUARTER),
                                 ("better than a random configuration", _low(to_median) > 0),
                                 ("as good as uniform LoRA", _low(to_lora) > -MARGIN)) if ok]
        out.append(f"H2 {arm}: {', '.join(found) or 'none of the three shown'} — percentile "
                   f"{', '.join(f'{p:.0f}' for p in pct)}; − envelope median {_fmt(to_median)}; − LoRA {_fmt(to_lora)}")
    masked, hybrid = _paired(rows, "masked_loss", LORA), _paired(rows, "hybrid", LORA)
    if masked is None or masked[2] < 2:
        h3 = "undecided (fewer than 2 seeds)"
    elif _low(masked) <= 0:
        h3 = ("masked_loss is not better than uniform LoRA: no headroom a criterion can find at this scale "
              f"(not detected at n={masked[2]}: this design detects ≥ {mde(masked[1]):.1f} points)")
    elif _low(hybrid) > 0:
        h3 = "masked_loss and hybrid both beat uniform LoRA"
    else:
        h3 = "masked_loss beats uniform LoRA and hybrid does not: the cheap criteria miss headroom that exists"
    out.append(f"H3 the ground truth as the bound: {h3} — masked_loss − LoRA {_fmt(masked)}")
    return out


def cost_table(seeds: list[int], here: Path = HERE) -> str:
    """Each search arm's wall-clock from its runs' own summary.json, mean over `seeds`: the search (every pass,
    probes included), the probes alone (the masked passes: `masked_loss`'s one-unit-masked evaluations at the
    warm-up snapshots and in the rounds, `warmup_probes` + `round_probes`; prunepeft/pruning/cost.py), the retrain. Stage B's hybrid (copied from confirm_cpu) predates the
    per-phase record: its search and retrain wall-clock only."""
    def cost(summary: dict) -> tuple[float, float, float] | None:
        if "cost" in summary:
            c = summary["cost"]
            return c["search_s"], c["phases_s"]["warmup_probes"] + c["phases_s"]["round_probes"], c["retrain_s"]
        if "wall_s" in summary.get("search", {}) and "wall_s" in summary.get("train", {}):
            return summary["search"]["wall_s"], float("nan"), summary["train"]["wall_s"]
        return None  # no timing recorded

    rows = ["| arm | seeds | search (s) | of which probes (s) | retrain (s) | search / retrain |", "|---|---|---|---|---|---|"]
    for arm in SEARCHES:
        found = [c for s in seeds if (f := here / f"{arm}-s{s}" / outputs.SUMMARY).exists()
                 and (c := cost(json.loads(f.read_text()))) is not None]
        if found:
            search, probes, retrain = (float(np.mean(x)) for x in zip(*found))
            probe = "—" if probes != probes else f"{probes:.0f}"
            rows.append(f"| {arm} | {len(found)} | {search:.0f} | {probe} | {retrain:.0f} | {search / retrain:.2f} |")
    return "\n".join(rows) if len(rows) > 2 else ""


def report(n: int = 16, here: Path = HERE) -> str:
    """The headroom table, rebuilt from the committed files (one implementation: prunepeft.report.headroom),
    then the verdicts of benchmarks/rules/headroom.md. Only seeds whose envelope has all `n` draws enter
    (a seed half-way through would sit beside the others as if it were finished); the rest are named."""
    import tempfile

    from prunepeft.analysis.headroom import collect_headroom
    from prunepeft.analysis.signal import arm_of
    from prunepeft.report import collect_runs
    from prunepeft.report.headroom import build_headroom

    runs = collect_runs(here)
    drawn = {s: len(d) for st in collect_headroom(runs).values() for s, d in st["envelope"].items()}
    complete = sorted(s for s, k in drawn.items() if k >= n)
    if not runs.empty:
        runs = runs[runs["run"].map(lambda r: arm_of(r)[1]).isin(complete)]
    running = ", ".join(f"seed {s} ({drawn[s]} of {n})" for s in sorted(drawn) if drawn[s] < n)
    head = (f"Seeds with all {n} envelope draws: {', '.join(map(str, complete)) or 'none yet'}"
            + (f"; not yet in the tables: {running}." if running else ".") + "\n\n")
    with tempfile.TemporaryDirectory() as tmp:
        table = build_headroom(runs, Path(tmp)) or f"no envelope runs under {HERE}"
    studies = collect_headroom(runs)
    lines = [line for study in studies.values() for line in verdicts(study)]
    cost = cost_table(complete, here)
    if cost:
        cost = ("\n\nWall-clock per search run (mean over the seeds above; runs two at a time on 2 shared cores, so "
                "compare within a row, not across studies):\n\n" + cost)
    return head + table + cost + ("\n\nVerdicts (benchmarks/rules/headroom.md):\n" + "\n".join(f"- {x}" for x in lines) if lines else "")


def main() -> None:
    ap = runner.study_parser(__doc__, STUDY, run_timeout=3600)
    ap.add_argument("--n", type=int, default=16, help="envelope draws per seed")
    ap.add_argument("--no-masked", action="store_true", help="only the envelope, not the masked_loss arm")
    args = ap.parse_args()
    if not args.report:
        runner.prepare(args)  # the draws' run= paths are relative to the repository
        runner.copy_references(stage_b.STUDY, STUDY, REFERENCES, args.seeds)
        runner.run_many(jobs(args.seeds, args.n, not args.no_masked), args)
        runner.run_many(replicate_jobs(args.seeds, args.n), args)  # needs the finished envelopes
    print(report(args.n))


if __name__ == "__main__":
    main()
