"""SLURM through hydra-submitit-launcher, tested with its local executor (`hydra/launcher=submitit_local`).

The local executor runs each job in its own process exactly as on a cluster, minus sbatch: the job
pickle, submitit's signal handlers, and the requeue path. Before a time limit submitit sends
SIGUSR2; its handler calls the launcher's `checkpoint()` (a DelayedSubmission of the same job) and
requeues it; the requeued job finds the run directory unfinished and resumes from its last
finished round. `debug.kill_at=after_checkpoint:3:USR2` sends that signal at an exact point (after
the 3rd checkpoint: warm-up, round 1, round 2) instead of waiting for a real time limit
(`timeout_min=1` would cost a minute per job); `max_num_timeout` is a SLURM-only key and is not used.
"""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from prunepeft.commands import search as search_cmd
from prunepeft.run.io import read_json, read_jsonl
from prunepeft.run.sweep import latest_summary

pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="hydra-submitit-launcher (dev extra)")

SEARCH = ["search.warmup.subset=32", "search.warmup.epochs=1", "search.warmup.snapshots=2",
          "search.retrain_epochs=1", "search.k=2"]


def test_submitit_local_sweep_requeues_on_usr2_and_resumes(glue_dir, tmp_path):
    from conftest import compose_config, tiny_overrides_for

    overrides = tiny_overrides_for(glue_dir) + SEARCH
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    # Two jobs: B=2000 prunes (4 checkpoints: signalled after the 3rd, requeued once); B=5000 holds the
    # whole supernet (4,256 params), so it has no rounds, no checkpoint, no signal: one attempt.
    cmd = [sys.executable, "-m", "prunepeft.cli", "search", "-m", "hydra/launcher=submitit_local", "budget.params=2000,5000",
           *overrides, "debug.kill_at=after_checkpoint:3:USR2", f"hydra.sweep.dir={tmp_path / 'sweep'}"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]

    rows = read_json(latest_summary(tmp_path / "sweep"))  # each sweep's summary in its own directory
    assert [(r["swept"]["budget.params"], r["status"]) for r in rows] == [("2000", "done"), ("5000", "done")]
    assert read_json(tmp_path / "sweep" / "rte" / "tiny_bert" / "hybrid_budget.params=5000-s42" / "run.json")["attempts"] == 1
    job = tmp_path / "sweep" / "rte" / "tiny_bert" / "hybrid_budget.params=2000-s42"
    info = read_json(job / "run.json")
    assert info["attempts"] == 2 and info["status"] == "done"  # signalled once, requeued once
    logs = "".join(p.read_text() for p in (tmp_path / "sweep" / ".submitit").rglob("*_log.err"))
    assert "Caught signal SIGUSR2" in logs and "Requeued job" in logs

    # The requeued attempt resumed after round 2: rounds 1-2 were trained by attempt 1 only.
    trained = {(e["phase"], e["attempt"]) for e in read_jsonl(job / "events.jsonl") if e.get("kind") == "eval"}
    assert ("warmup", 2) not in trained and ("round1", 2) not in trained and ("round2", 2) not in trained
    assert ("round2", 1) in trained and ("retrain", 2) in trained
    assert [r["round"] for r in read_jsonl(job / "rounds.jsonl")] == list(range(1, len(read_jsonl(job / "rounds.jsonl")) + 1))

    # ... and ends with the configuration of an uninterrupted run.
    search_cmd.run(compose_config("search", overrides + ["budget.params=2000"]), tmp_path / "plain")
    assert read_json(job / "found_config.json") == read_json(tmp_path / "plain" / "found_config.json")


def test_submitit_local_two_process_job_joins_one_process_group(glue_dir, tmp_path):
    """`hydra.launcher.tasks_per_node=2`: submitit starts 2 tasks of one job, each exports its rank
    from submitit's job environment and joins one gloo group; the run is data parallel (world_size 2
    in run.json) and finds what one process finds."""
    from conftest import compose_config, tiny_overrides_for

    overrides = tiny_overrides_for(glue_dir) + SEARCH + ["model.tiny.dropout=0", "budget.params=2000"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    cmd = [sys.executable, "-m", "prunepeft.cli", "search", "-m", "hydra/launcher=submitit_local",
           "hydra.launcher.tasks_per_node=2", *overrides, f"hydra.sweep.dir={tmp_path / 'sweep'}"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    job = next((tmp_path / "sweep").rglob("run.json")).parent
    info = read_json(job / "run.json")
    assert info["world_size"] == 2 and info["status"] == "done"

    search_cmd.run(compose_config("search", overrides), tmp_path / "one")
    assert read_json(job / "found_config.json") == read_json(tmp_path / "one" / "found_config.json")
