"""Baseline benchmark (issues "Foundation" and "PEFT units"): MiniLM-L6 on RTE and a 2k SST-2 subset.

Runs `prunepeft baseline` for full fine-tuning, head-only, and uniform LoRA / adapter sized to the
search's budget (`budget.percent=0.75`), one process at a time, then prints a markdown table: dev
accuracy of the last epoch (the headline) and of the best epoch, trainable parameters, and
wall-clock per epoch (training + dev evaluation). Finished runs are skipped (prunepeft skips a
directory with DONE), so the script can be re-run to extend or re-print the table.

    python -m benchmarks.baselines --arms sst2-fft sst2-head rte-fft rte-head
    python -m benchmarks.baselines --report-only
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from prunepeft.run import outputs

COMMON = ["model=minilm_l6", "train=cpu", "train.progress=false", "seed=1"]
TASKS = {
    # RTE: 2,490 train examples at length 128 (~9 examples/s with LoRA on 2 cores): one epoch.
    "rte": ["task=rte", "train.max_length=128", "train.epochs=1"],
    # SST-2: a stratified 2k subset at length 64 (p99 = 44 tokens), two epochs.
    "sst2": ["task=sst2", "train.max_length=64", "data.train_subset=2000", "train.epochs=2"],
}
METHODS = {
    "fft": ["method=fft"],
    "head": ["method=head"],
    "lora": ["method=lora", "size_to_budget=true", "budget.percent=0.75"],
    "adapter": ["method=adapter", "size_to_budget=true", "budget.percent=0.75"],
}
ARMS = {f"{t}-{m}": [*TASKS[t], *METHODS[m]] for t in TASKS for m in METHODS}

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "outputs" / "bench" / "baselines"


def run_arm(arm: str) -> Path:
    """Run one arm (skipped by prunepeft itself when already finished)."""
    run_dir = OUT / arm
    cmd = [str(ROOT / ".venv" / "bin" / "prunepeft"), "baseline", *COMMON, *ARMS[arm], f"hydra.run.dir={run_dir}"]
    started = time.time()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    print(f"{arm}: {time.time() - started:.0f}s", file=sys.stderr)
    return run_dir


def report(arms: list[str]) -> str:
    """Markdown table over the finished arms."""
    rows = ["| task | method | epochs | lr (peft / head / backbone) | trainable params | dev acc (last) | dev acc (best, epoch) | s / epoch |",
            "|---|---|---|---|---|---|---|---|"]
    for arm in arms:
        run_dir = OUT / arm
        if not (run_dir / outputs.DONE).exists():
            continue
        s = json.loads((run_dir / outputs.SUMMARY).read_text())
        metric = s["primary"]["metric"]
        best = s["best_metrics"][s["primary"]["split"]][metric]
        lr = s["lr"]
        lrs = f"{lr['peft']:g} / {lr['head']:g} / {lr['backbone']:g}"
        epochs = s["train"]["epochs"]
        rows.append(f"| {s['task']} | {s['method']} | {epochs} | {lrs} | {s['params']['trainable']:,} | "
                    f"{s['primary']['value']:.4f} | {best:.4f} (ep {s['best_epoch']}) | "
                    f"{s['train']['wall_s'] / epochs:.0f} |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args()
    if not args.report_only:
        for arm in args.arms:
            run_arm(arm)
    print(report(args.arms))


if __name__ == "__main__":
    main()
