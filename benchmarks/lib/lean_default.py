"""The lean default (issue 22): apply the rules of benchmarks/rules/lean_default.md.

    python -m benchmarks.lean_default --report                 # D1 and D2 from the committed runs
    python -m benchmarks.lean_default --phase warmup --workers 2   # D2's runs, level by level, then stop

D1 (assignment + combination) is decided from `benchmarks/results/confirm_cpu/`; D2 (warm-up
settings) from `benchmarks/results/warmup_learning/<task>-e<epochs>-lr<rate>-s<seed>/`, each a search
stopped after its warm-up (`debug.crash_after_round=0`: warmup.json is all D2 reads).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from prunepeft.analysis.stats import mean_ci
from prunepeft.run import outputs  # the run-file names

ROOT = Path(__file__).resolve().parents[2]  # the repository (benchmarks/lib/ is two below it)
RESULTS = ROOT / "benchmarks" / "results"
CONFIRM = RESULTS / "confirm_cpu"
WARMUP = RESULTS / "warmup_learning"
NONINFERIORITY = 1.0  # points (benchmarks/rules/lean_default.md, the ranking rule)

# D2's candidates: (level, epochs, warm-up lr or None = train.lr_peft), in the rule's order.
CANDIDATES = [(level, epochs, lr) for level, epochs in ((1, 2), (2, 4), (3, 8)) for lr in (None, 3e-3, 1e-2)]
TASKS = ("sst2", "rte")
SEEDS = (1, 2, 3)
# scale=cpu as the presets set it after D1: the paper's reading, reinit=keep, the 2k subset.
COMMON = ["model=minilm_l6", "train=cpu", "data.train_subset=2000", "search.reinit=keep",
          "search.warmup.assign=tendency", "strategy.combine=paper", "train.progress=false",
          "debug.crash_after_round=0"]


# ------------------------------------------------------------------------------------ D1
def heldout(arm: str, root: Path = CONFIRM) -> dict[int, float]:
    """Held-out accuracy (points) per seed of a committed stage-B arm."""
    out = {}
    for path in sorted(root.glob(f"{arm}-s*/{outputs.SUMMARY}")):
        summary = json.loads(path.read_text())
        out[int(path.parent.name.rsplit("-s", 1)[1])] = 100 * summary["metrics"]["train_heldout"]["accuracy"]
    return out


def verdict(diffs: list[float]) -> tuple[str, tuple[float, float, int]]:
    """The ranking rule on paired differences (arm − base, points): better | non-inferior | worse | inconclusive."""
    mean, half, n = mean_ci(diffs)
    low, high = mean - half, mean + half
    v = "better" if low > 0 else "worse" if high < 0 else "non-inferior" if low > -NONINFERIORITY else "inconclusive"
    return v, (round(low, 2), round(high, 2), n)


def paired(arm: str, base: str, root: Path = CONFIRM) -> list[float]:
    a, b = heldout(arm, root), heldout(base, root)
    return [a[s] - b[s] for s in sorted(set(a) & set(b))]


def probe_seconds(arm: str, root: Path = CONFIRM) -> list[float]:
    """The agreement probe's measured seconds per run (warmup.json), the cost the paper's reading does not pay."""
    return [json.loads(p.read_text()).get("agreement", {}).get("wall_s", 0.0)
            for p in sorted(root.glob(f"{arm}-s*/{outputs.WARMUP}"))]


def decide_assignment(root: Path = CONFIRM) -> dict:
    """D1: the paper's reading unless agreement+zscore (or consensus) is *better* than it."""
    agreement = verdict(paired("hybrid_agreement_zscore", "hybrid", root))
    consensus = verdict(paired("hybrid_consensus_zscore", "hybrid", root))
    probe = probe_seconds("hybrid_agreement_zscore", root)
    if agreement[0] == "better":
        default = ("agreement", "zscore")
    elif consensus[0] == "better":
        default = ("consensus", "zscore")
    else:
        default = ("tendency", "paper")
    return {"agreement_zscore_vs_paper": agreement, "consensus_zscore_vs_paper": consensus,
            "agreement_probe_s": (round(min(probe), 1), round(max(probe), 1)) if probe else None,
            "default": default}


# ------------------------------------------------------------------------------------ D2
def candidate_name(task: str, epochs: int, lr: float | None, seed: int) -> str:
    return f"{task}-e{epochs}-lr{'default' if lr is None else f'{lr:g}'}-s{seed}"


def learned(task: str, epochs: int, lr: float | None, seed: int, root: Path = WARMUP) -> bool | None:
    path = root / candidate_name(task, epochs, lr, seed) / outputs.WARMUP
    if not path.exists():
        return None
    return bool(json.loads(path.read_text())["learning"]["learned"])


def decide_warmup(root: Path = WARMUP) -> dict:
    """D2: the first candidate (level, then lr) whose warm-up learned in 6 of 6 (task, seed) pairs."""
    table, levels_done = [], set()
    for level, epochs, lr in CANDIDATES:
        flags = [learned(t, epochs, lr, s, root) for t in TASKS for s in SEEDS]
        table.append({"level": level, "epochs": epochs, "lr": lr, "learned": flags})
        if None not in flags:
            levels_done.add(level)
    for row in table:
        if all(row["learned"]):
            return {"table": table, "default": (row["epochs"], row["lr"])}
    complete = sorted(levels_done)
    return {"table": table, "default": None, "levels_without_a_winner": complete}


def _run(task: str, epochs: int, lr: float | None, seed: int, args) -> str:
    name = candidate_name(task, epochs, lr, seed)
    dest = WARMUP / name
    if (dest / outputs.WARMUP).exists():
        return f"{name}: committed"
    work = Path(args.work) / name
    shutil.rmtree(work, ignore_errors=True)
    cmd = [sys.executable, "-m", "prunepeft.cli", "search", f"task={task}", *COMMON, f"search.warmup.epochs={epochs}",
           f"search.warmup.lr={'null' if lr is None else lr}", f"seed={seed}", f"hydra.run.dir={work}"]
    env = {"PRUNEPEFT_DATA_DIR": str(ROOT.parent / "shared" / "data" / "glue"), **os.environ,  # as the Makefile
           "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    started = time.time()
    subprocess.run(cmd, capture_output=True, text=True, env=env)
    if not (work / outputs.WARMUP).exists():
        return f"{name}: FAILED"
    dest.mkdir(parents=True, exist_ok=True)
    for f in (outputs.WARMUP, outputs.RUN_JSON):
        shutil.copy(work / f, dest / f)
    return f"{name}: {time.time() - started:.0f}s learned={learned(task, epochs, lr, seed)}"


def run_warmup_phase(args) -> None:
    """Run D2's candidates in the rule's order (level, then lr); stop at the first with a winner.

    Candidate by candidate, not level by level: the rule takes the first qualifying candidate in this
    order, so a later candidate of the same level can never change the decision once one qualifies.
    """
    for level, epochs, lr in CANDIDATES:
        jobs = [(t, epochs, lr, s) for t in TASKS for s in SEEDS]
        with ThreadPoolExecutor(args.workers) as pool:
            for line in pool.map(lambda j: _run(*j, args), jobs):
                print(line, flush=True)
        if decide_warmup()["default"] is not None:
            break


def report() -> str:
    d1, d2 = decide_assignment(), decide_warmup()
    lines = ["D1 assignment + combination (held-out points, paired, 95 % interval):"]
    for key in ("agreement_zscore_vs_paper", "consensus_zscore_vs_paper"):
        v, (low, high, n) = d1[key]
        lines.append(f"  {key}: {v} (n={n}; [{low:+.2f}, {high:+.2f}])")
    lines.append(f"  agreement probe cost per run: {d1['agreement_probe_s']} s; default: {'+'.join(d1['default'])}")
    lines.append("D2 warm-up settings (learned flag per task x seed: sst2 s1-3, rte s1-3):")
    for row in d2["table"]:
        flags = "".join("-" if f is None else "y" if f else "n" for f in row["learned"])
        lines.append(f"  level {row['level']} epochs {row['epochs']} lr {row['lr'] or 'train.lr_peft'}: {flags}")
    lines.append(f"  default: {d2['default']}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--phase", choices=["warmup"])
    parser.add_argument("--report", action="store_true")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--work", default="/tmp/prunepeft-lean-default")
    args = parser.parse_args()
    if args.phase == "warmup":
        run_warmup_phase(args)
    print(report())

