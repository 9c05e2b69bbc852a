"""Data-parallel runs: 2 CPU processes (torchrun, gloo) against 1, end to end on tiny_bert.

What must hold (prunepeft.train.distributed): with dropout off and the same seed and global
batch, rank r trains on rows r::W of every single-process micro-batch and DDP averages the
gradients, so 1 and 2 processes find the same configuration, with per-unit statistics equal
within STAT_RTOL (float sums in another order; measured ~1e-5). The setup exercises the awkward
cases: gradient accumulation (DDP's no_sync), a last micro-batch of ONE row (rank 1's share is
empty), and the diagnostics probe (every rank computes it identically).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from prunepeft.commands import baseline as baseline_cmd
from prunepeft.commands import search as search_cmd
from prunepeft.io import read_json, read_jsonl
from prunepeft.runs import RunLock

STAT_RTOL = 1e-4  # relative, per statistic per unit per round
STAT_ATOL = 1e-9  # gradients of ~1e-7 differ in their last digits

# 49 rows, batch 16 in 2 micro-batches of 8: the last step has 1 row, so rank 1's share is empty.
DIST = ["data.train_subset=49", "data.eval_subset=31", "train.grad_accum=2", "model.tiny.dropout=0"]
SEARCH = ["search.warmup.subset=32", "search.warmup.epochs=1", "search.warmup.snapshots=2",
          "search.retrain_epochs=1", "budget.params=2000", "search.k=2", "search.diagnostics.enabled=true",
          "search.diagnostics.probe=32", "search.diagnostics.random_sets=5"]


def _torchrun(command: str, overrides: list[str], run_dir: Path, nproc: int = 2) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           "-m", "prunepeft.cli", command, *overrides, f"hydra.run.dir={run_dir}"]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= STAT_ATOL + STAT_RTOL * abs(a)


def test_two_process_search_matches_one_process(glue_dir, tmp_path):
    from conftest import compose_config, tiny_overrides_for

    overrides = tiny_overrides_for(glue_dir) + DIST + SEARCH
    two = _torchrun("search", overrides, tmp_path / "two")
    assert two.returncode == 0, two.stderr[-3000:]
    one = search_cmd.run(compose_config("search", overrides), tmp_path / "one")

    info = read_json(tmp_path / "two" / "run.json")
    assert info["world_size"] == 2 and info["status"] == "done"
    assert read_json(tmp_path / "one" / "run.json")["world_size"] == 1
    assert two.stdout.count("found configuration") == 1  # rank 1 prints nothing
    assert read_json(tmp_path / "two" / "found_config.json") == read_json(tmp_path / "one" / "found_config.json")
    assert read_json(tmp_path / "two" / "warmup.json")["assignment"] == read_json(tmp_path / "one" / "warmup.json")["assignment"]

    rows1, rows2 = read_jsonl(tmp_path / "one" / "rounds.jsonl"), read_jsonl(tmp_path / "two" / "rounds.jsonl")
    assert [r["removed"] for r in rows2] == [r["removed"] for r in rows1] and rows1
    for r1, r2 in zip(rows1, rows2):
        for uid, stats in r1["statistics"].items():
            for key, value in stats.items():
                other = r2["statistics"][uid][key]
                if key == "steps":  # optimizer steps: the same count, never summed over ranks
                    assert other == value
                elif isinstance(value, float):
                    assert _close(value, other), (r1["round"], uid, key, value, other)
        imp1, imp2 = r1["diagnostics"]["importance"], r2["diagnostics"]["importance"]
        assert imp1.keys() == imp2.keys() and all(abs(imp1[u] - imp2[u]) < 1e-5 for u in imp1)

    summary = read_json(tmp_path / "two" / "summary.json")
    assert summary["metrics"] == one["metrics"]
    assert summary["search"]["examples"] == one["search"]["examples"]  # rows over all ranks, counted once
    assert abs(summary["history"][-1]["train_loss"] - one["history"][-1]["train_loss"]) < 1e-5
    assert len(read_jsonl(tmp_path / "two" / "events.jsonl")) == len(read_jsonl(tmp_path / "one" / "events.jsonl"))


def test_two_process_baseline_matches_one_process(glue_dir, tmp_path):
    from conftest import compose_config, tiny_overrides_for

    overrides = tiny_overrides_for(glue_dir) + DIST + ["method=lora"]
    two = _torchrun("baseline", overrides, tmp_path / "two")
    assert two.returncode == 0, two.stderr[-3000:]
    one = baseline_cmd.run(compose_config("baseline", overrides), tmp_path / "one")
    assert read_json(tmp_path / "two" / "run.json")["world_size"] == 2
    summary = read_json(tmp_path / "two" / "summary.json")
    assert summary["metrics"] == one["metrics"] and summary["train"]["examples_seen"] == 49
    assert abs(summary["history"][-1]["train_loss"] - one["history"][-1]["train_loss"]) < 1e-5


def test_two_process_run_lock_is_rank0s_and_every_rank_follows(glue_dir, tmp_path):
    """A directory held by another invocation: rank 0 is refused, rank 1 follows (no hang), exit 2."""
    from conftest import tiny_overrides_for

    run_dir = tmp_path / "held"
    lock = RunLock(run_dir)
    lock.acquire()
    try:
        two = _torchrun("search", tiny_overrides_for(glue_dir) + SEARCH, run_dir)
    finally:
        lock.release()
    assert two.returncode != 0
    assert two.stderr.count(f"is in use by pid {os.getpid()}") == 2, two.stderr[-3000:]  # both ranks say why
    assert not (run_dir / "run.json").exists()
