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


def report() -> str:
    """The headroom table, rebuilt from the committed files (one implementation: prunepeft.report.headroom)."""
    import tempfile

    from prunepeft.report import collect_runs
    from prunepeft.report.headroom import build_headroom

    with tempfile.TemporaryDirectory() as tmp:
        return build_headroom(collect_runs(HERE), Path(tmp)) or f"no envelope runs under {HERE}"


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
    print(report())


if __name__ == "__main__":
    main()
