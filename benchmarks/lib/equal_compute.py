"""Equal compute for warm starts (issue 22, item 5; the rule: benchmarks/rules/lean_default.md, D4).

Per seed: the paper's reading at stage B's settings with a warm-started retrain (`hybrid_warm`:
`search.retrain_init=warm`), then uniform LoRA at that run's parameter count trained on as many examples
as it trained in all (`lora_equal_compute`: `match_compute=` the committed warm run, whole epochs).
Stage B's `hybrid` and `uniform_lora_eqparams` runs of the same seeds are copied in, so the study's
folder holds every arm of the comparison. Results: `benchmarks/results/equal_compute/<arm>-s<seed>/`.

    PRUNEPEFT_DATA_DIR=/work/shared/data/glue python -m benchmarks.equal_compute --seeds 1 2 3
    python -m benchmarks.equal_compute --report     # the table, rebuilt from the committed files
"""
from __future__ import annotations

import json

from benchmarks.lib import cpu_stage_b as stage_b  # stage B's recipe and results layout
from benchmarks.lib import study_runner as runner
from prunepeft.analysis.stats import mean_ci
from prunepeft.run import outputs

STUDY = "equal_compute"
HERE = runner.RESULTS / STUDY
SOURCE = runner.RESULTS / stage_b.STUDY
REFERENCES = ("hybrid", "uniform_lora_eqparams")
HELDOUT = "train_heldout"


def warm_job(seed: int) -> tuple:
    return (STUDY, "hybrid_warm", seed, "search", [*stage_b.BASE, "search.retrain_init=warm", "arm=hybrid_warm"])


def lora_job(seed: int) -> tuple | None:
    """Uniform LoRA matched to the committed warm run of `seed` (None until that run is committed)."""
    warm = HERE / f"hybrid_warm-s{seed}"
    if not (warm / outputs.SUMMARY).exists():
        return None
    params = json.loads((warm / outputs.SUMMARY).read_text())["params"]["peft"]
    return (STUDY, "lora_equal_compute", seed, "baseline",
            ["method=lora", "size_to_budget=true", f"budget.params={params}", "budget.percent=null",
             f"match_compute={warm.relative_to(runner.ROOT).as_posix()}", "arm=lora_equal_compute"])


def heldout(arm: str) -> dict[int, float]:
    """{seed: held-out accuracy in points} of an arm's committed runs."""
    out = {}
    for d in sorted(HERE.glob(f"{arm}-s*")):
        summary = d / outputs.SUMMARY
        if summary.exists() and d.name.rsplit("-s", 1)[0] == arm:
            out[int(d.name.rsplit("-s", 1)[1])] = 100 * json.loads(summary.read_text())["metrics"][HELDOUT]["accuracy"]
    return out


def contrast(a: str, b: str) -> str:
    """`a − b` paired by seed: mean ± 95 % half-width (t), n, and D4's verdict words."""
    xa, xb = heldout(a), heldout(b)
    seeds = sorted(set(xa) & set(xb))
    if len(seeds) < 2:
        return f"| {a} − {b} | {len(seeds)} | — | — |"
    mean, half, _ = mean_ci([xa[s] - xb[s] for s in seeds])
    verdict = ("above 0" if mean - half > 0 else "below 0" if mean + half < 0 else "includes 0")
    return f"| {a} − {b} | {len(seeds)} | {mean:+.2f} ± {half:.2f} | {verdict} |"


def report() -> str:
    arms = ("hybrid_warm", "lora_equal_compute", "hybrid", "uniform_lora_eqparams")
    lines = ["| arm | seeds | held-out accuracy (mean, points) | trained examples (mean) |", "|---|---|---|---|"]
    for arm in arms:
        acc = heldout(arm)
        ex = []
        for seed in acc:
            s = json.loads((HERE / f"{arm}-s{seed}" / outputs.SUMMARY).read_text())
            cost = (s.get("cost") or {}).get("examples")
            if cost:  # a search: warm-up + rounds + retrain
                ex.append(cost["search_trained"] + cost["retrain_trained"])
            elif s.get("command") == "baseline":
                ex.append(s["train"]["examples_seen"])
            # stage B's searches predate `cost`: their search's examples were not recorded
        trained = f"{sum(ex) / len(ex):,.0f}" if len(ex) == len(acc) else "— (recorded before `cost`)"
        lines.append(f"| {arm} | {len(acc)} | {sum(acc.values()) / max(1, len(acc)):.2f} | {trained} |"
                     if acc else f"| {arm} | 0 | — | — |")
    lines += ["", "| contrast (held-out points, paired) | n | mean ± 95 % | interval |", "|---|---|---|---|",
              contrast("hybrid_warm", "lora_equal_compute"), contrast("hybrid_warm", "hybrid"),
              contrast("lora_equal_compute", "uniform_lora_eqparams")]
    return "\n".join(lines)


def main() -> None:
    args = runner.study_parser(__doc__, STUDY, run_timeout=7200).parse_args()
    if not args.report:
        runner.prepare(args)
        runner.copy_references(stage_b.STUDY, STUDY, REFERENCES, args.seeds)
        for seed in args.seeds:  # seed-major: a seed's warm run, then its matched LoRA
            runner.run_many([warm_job(seed)], args)
            job = lora_job(seed)
            if job:
                runner.run_many([job], args)
    print(report())


if __name__ == "__main__":
    main()
