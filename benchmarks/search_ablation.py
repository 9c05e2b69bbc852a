"""Search benchmark (issue "The PrunePEFT search", Benchmark): MiniLM-L6 on a 2k SST-2 subset.

Runs `prunepeft search` for the Table 5 strategies and `prunepeft baseline` for uniform LoRA /
adapter sized to the same budget, for several seeds, one process at a time, then prints a markdown
table: mean ± std of dev accuracy, the paired per-seed difference to `hybrid`, params, search cost.
Finished runs are skipped, so the script can be re-run to extend a sweep.

    python -m benchmarks.search_ablation --seeds 1 2 3 --arms hybrid random none
    python -m benchmarks.search_ablation --report-only
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from prunepeft.run import outputs

COMMON = ["task=sst2", "model=minilm_l6", "train=cpu", "train.max_length=64", "data.train_subset=2000",
          "budget.percent=0.75", "train.progress=false"]
SEARCH = ["search.fidelity=low", "search.warmup.subset=512", "search.k=4", "search.retrain_epochs=2"]
ARMS: dict[str, list[str]] = {
    "hybrid": ["search", *SEARCH, "strategy=hybrid"],
    "random": ["search", *SEARCH, "strategy=random"],
    "none": ["search", *SEARCH, "strategy=none"],
    "hybrid_no_partition": ["search", *SEARCH, "strategy=hybrid_no_partition"],
    # the paper's default fidelity (rounds on the whole 2k training set, k=2): search cost (Table 4)
    "hybrid_high": ["search", "search.warmup.subset=512", "search.retrain_epochs=2", "strategy=hybrid"],
    "uniform_lora": ["baseline", "method=lora", "size_to_budget=true", "train.epochs=2"],
    "uniform_adapter": ["baseline", "method=adapter", "size_to_budget=true", "train.epochs=2"],
}
for _c in ("weight", "zeros", "threshold", "activation", "taylor", "gradient"):
    ARMS[f"single_{_c}"] = ["search", *SEARCH, "strategy=single", f"strategy.criterion={_c}"]

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "outputs" / "bench" / "search_ablation"


def run_arm(arm: str, seed: int) -> Path:
    """Run one arm for one seed (skipped by prunepeft itself when already finished)."""
    run_dir = OUT / f"{arm}-s{seed}"
    command, *args = ARMS[arm]
    cmd = [str(ROOT / ".venv" / "bin" / "prunepeft"), command, *COMMON, *args, f"seed={seed}",
           f"hydra.run.dir={run_dir}"]
    started = time.time()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    print(f"{arm} seed {seed}: {time.time() - started:.0f}s", file=sys.stderr)
    return run_dir


def _load(run_dir: Path) -> dict | None:
    path = run_dir / outputs.SUMMARY
    return json.loads(path.read_text()) if (run_dir / outputs.DONE).exists() else None


def _fmt(values: list[float]) -> str:
    if not values:
        return "—"
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"


def report(arms: list[str], seeds: list[int]) -> str:
    """Markdown table over the finished runs."""
    rows = ["| arm | n | dev accuracy (last epoch) | Δ vs hybrid (paired) | PEFT params (% base) | search epoch-eq | search s | retrain s |",
            "|---|---|---|---|---|---|---|---|"]
    hybrid = {s: _load(OUT / f"hybrid-s{s}") for s in seeds}
    for arm in arms:
        runs = {s: _load(OUT / f"{arm}-s{s}") for s in seeds}
        runs = {s: r for s, r in runs.items() if r}
        if not runs:
            continue
        acc = [r["primary"]["value"] for r in runs.values()]
        diffs = [r["primary"]["value"] - hybrid[s]["primary"]["value"] for s, r in runs.items()
                 if hybrid.get(s) and arm != "hybrid"]
        params = statistics.mean(r["params"]["peft"] for r in runs.values())
        pct = statistics.mean(r["params"]["percent"] for r in runs.values())
        search = [r.get("search", {}) for r in runs.values()]
        eq = _fmt([s["epoch_equivalents"] for s in search if s]) if any(search) else "—"
        wall = f"{statistics.mean(s['wall_s'] for s in search):.0f}" if all(search) else "—"
        retrain = statistics.mean(r["train"]["wall_s"] for r in runs.values())
        rows.append(f"| {arm} | {len(runs)} | {_fmt(acc)} | {_fmt(diffs) if diffs else '—'} | "
                    f"{params:,.0f} ({pct:.3f}%) | {eq} | {wall} | {retrain:.0f} |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args()
    if not args.report_only:
        for seed in args.seeds:
            for arm in args.arms:
                run_arm(arm, seed)
    print(report(args.arms, args.seeds))


if __name__ == "__main__":
    main()
