"""The runner and results layout shared by the benchmark studies (`signal_study.py`, `rules_study.py`,
`cpu_stage_b.py`): one `prunepeft search|baseline` process per (arm, seed) with an explicit
`hydra.run.dir`, its small files copied to `benchmarks/results/<study>/<arm>-s<seed>/`, and the
paired statistics read back from there.

A run already committed is skipped; one whose recorded overrides differ from the arm's is refused.
A run that finished after its orchestrator died is collected, not rerun.
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

from prunepeft.analysis.stats import mean_ci  # one implementation of the statistics
from prunepeft.run import outputs  # the run-file names

ROOT = Path(__file__).resolve().parents[2]  # the repository (benchmarks/lib/ is two below it)

RESULTS = ROOT / "benchmarks" / "results"
SMALL_FILES = (outputs.RUN_JSON, outputs.SUMMARY, outputs.FOUND_CONFIG, outputs.WARMUP, outputs.ROUNDS, outputs.DONE)

COMMON = ["task=sst2", "model=minilm_l6", "train=cpu", "train.max_length=64", "data.train_subset=2000",
          "data.heldout=5000", "budget.percent=0.75", "train.progress=false"]


def _arm(base: list[str], **changes: str) -> list[str]:
    """`base` overrides with some keys changed (a later override of the same key replaces it)."""
    out: dict[str, str] = {}
    for o in base:
        out[o.split("=", 1)[0]] = o
    out.update({k: f"{k}={v}" for k, v in changes.items()})
    return list(out.values())


# ------------------------------------------------------------------------------------ running
def study_parser(doc: str, study: str, run_timeout: float) -> argparse.ArgumentParser:
    """The command line every seeded study shares (`--seeds`, `--workers`, `--deadline`, `--run-timeout`,
    `--work`, `--python`, `--report`); a study adds its own options to it."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="*", default=[1, 2, 3])
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--deadline", type=float, default=1e9, help="seconds after which no new run starts")
    ap.add_argument("--run-timeout", type=float, default=run_timeout, help="seconds one run may take")
    ap.add_argument("--work", default=str(ROOT / "outputs" / study))
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("--report", action="store_true")
    return ap


def prepare(args: argparse.Namespace) -> None:
    """Before a study's runs: the repository as working directory (run= and match_compute= paths are
    relative to it), one torch thread per process, and the deadline from now."""
    args.extra = getattr(args, "extra", [])
    os.chdir(ROOT)
    os.environ.update({"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})
    args.deadline_at = time.time() + args.deadline


def copy_references(source: str, study: str, arms: tuple[str, ...], seeds: list[int]) -> None:
    """Another study's committed runs of these arms and seeds, copied in as they are (small files), so
    that one folder holds every arm a study's report compares; nothing is re-run."""
    for seed in seeds:
        for arm in arms:
            src, dest = RESULTS / source / f"{arm}-s{seed}", RESULTS / study / f"{arm}-s{seed}"
            if (src / outputs.SUMMARY).exists() and not dest.exists():
                shutil.copytree(src, dest)
                (dest / "copied_from.txt").write_text(f"benchmarks/results/{source}/{arm}-s{seed}\n")


def run_one(study: str, arm: str, seed: int, command: str, overrides: list[str], args) -> dict | None:
    """Run one (arm, seed) unless its results are committed; return its summary (None on failure)."""
    dest = RESULTS / study / f"{arm}-s{seed}"
    record = {"command": command, "overrides": overrides}
    if (dest / outputs.SUMMARY).exists():
        old = json.loads((dest / "overrides.json").read_text())
        if old != record:
            raise SystemExit(f"{dest} holds a run with other overrides: {old} != {record}; remove it or rename the arm")
        return json.loads((dest / outputs.SUMMARY).read_text())
    work = Path(args.work) / study / f"{arm}-s{seed}"
    cmd = [args.python, "-m", "prunepeft.cli", command, *_arm(COMMON + overrides, **dict(o.split("=", 1) for o in args.extra)),
           f"seed={seed}", f"hydra.run.dir={work}"]
    started = time.time()
    if _finished_with(work, cmd[4:]):  # finished after an earlier orchestrator died: collect, don't rerun
        return _collect(work, dest, record)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "HF_HUB_OFFLINE": "1"},
                              timeout=args.run_timeout)
    except subprocess.TimeoutExpired:
        print(f"TIMEOUT {study}/{arm}-s{seed} after {args.run_timeout}s", file=sys.stderr, flush=True)
        return None
    if proc.returncode != 0 or not (work / outputs.SUMMARY).exists():
        print(f"FAILED {study}/{arm}-s{seed} ({proc.returncode}):\n{proc.stderr[-3000:]}", file=sys.stderr, flush=True)
        return None
    print(f"{study}/{arm}-s{seed}: {time.time() - started:.0f}s", file=sys.stderr, flush=True)
    return _collect(work, dest, record)


def _finished_with(work: Path, argv: list[str]) -> bool:
    """A finished run in `work` whose recorded command line is `argv` (run.json's argv)."""
    try:
        run = json.loads((work / outputs.RUN_JSON).read_text())
    except (OSError, ValueError):
        return False
    return (work / outputs.SUMMARY).exists() and run.get("status") == "done" and run.get("argv", [])[1:] == argv


def _collect(work: Path, dest: Path, record: dict) -> dict:
    """Copy a finished run's small files to its committed folder; return its summary."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in SMALL_FILES:
        if (work / name).exists():
            shutil.copy2(work / name, dest / name)
    (dest / "overrides.json").write_text(json.dumps(record, indent=1) + "\n")
    return json.loads((dest / outputs.SUMMARY).read_text())


def run_many(jobs: list[tuple], args) -> list:
    """Run (study, arm, seed, command, overrides) jobs on `args.workers` processes, before the deadline."""
    def guarded(job):
        if time.time() > args.deadline_at:
            return None
        return run_one(*job, args)

    with ThreadPoolExecutor(max_workers=args.workers) as pool:
        return list(pool.map(guarded, jobs))


# ------------------------------------------------------------------------------------ statistics
def load_runs(study: str) -> dict[str, dict[int, dict]]:
    """{arm: {seed: {"summary":…, "rounds": […], "warmup": …}}} of the committed runs."""
    out: dict[str, dict[int, dict]] = {}
    for d in sorted((RESULTS / study).glob("*-s*")):
        if not (d / outputs.SUMMARY).exists():
            continue
        arm, seed = d.name.rsplit("-s", 1)
        rounds = [json.loads(x) for x in (d / outputs.ROUNDS).read_text().splitlines()] if (d / outputs.ROUNDS).exists() else []
        out.setdefault(arm, {})[int(seed)] = {"summary": json.loads((d / outputs.SUMMARY).read_text()), "rounds": rounds}
    return out


def accuracy(summary: dict, split: str) -> float | None:
    """The run's primary metric (accuracy for SST-2, MCC for CoLA) on `split`."""
    metric = summary.get("primary", {}).get("metric", "accuracy")
    return summary.get("metrics", {}).get(split, {}).get(metric)


def paired(runs: dict[str, dict[int, dict]], arm: str, base: str, split: str) -> tuple | None:
    """Paired difference arm − base over common seeds: (mean, ±95 %, n), in accuracy points."""
    seeds = sorted(set(runs.get(arm, {})) & set(runs.get(base, {})))
    diffs = [100 * (accuracy(runs[arm][s]["summary"], split) - accuracy(runs[base][s]["summary"], split)) for s in seeds]
    return mean_ci(diffs)

