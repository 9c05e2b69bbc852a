"""Data-parallel runs: 2 CPU processes (torchrun, gloo) against 1, end to end on tiny_bert.

What must hold (prunepeft.train.distributed): with dropout off and the same seed and global
batch, rank r trains on rows r::W of every single-process micro-batch and DDP averages the
gradients, so 1 and 2 processes find the same configuration, with per-unit statistics equal
within STAT_RTOL (float sums in another order; measured ~1e-5). The setup exercises the awkward
cases: gradient accumulation (DDP's no_sync), a last micro-batch of ONE row (rank 1's share is
empty), and the diagnostics probe (every rank computes it identically).
"""
from __future__ import annotations

import multiprocessing
import os
import socket
import subprocess
import sys
from pathlib import Path

from prunepeft.commands import baseline as baseline_cmd
from prunepeft.commands import search as search_cmd
from prunepeft.run.io import read_json, read_jsonl
from prunepeft.run.record import RunLock
from prunepeft.train import distributed

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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _rank_main(rank: int, world: int, port: int, fn, queue) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))
    try:
        distributed.setup()
        queue.put((rank, "ok", fn()))
    except BaseException as err:  # noqa: BLE001 - reported to the test
        queue.put((rank, "error", f"{type(err).__name__}: {err}"))
    finally:
        distributed.teardown()
        os._exit(0)


def _two_ranks(fn) -> dict[int, tuple[str, object]]:
    """`fn()` in 2 forked processes joined by gloo, exactly as torchrun's workers join (same env keys).

    Forked from the test process (torch and the package already imported): seconds, not the
    ~10 s import cost per process of a fresh `torchrun` launch (used once, for the search).
    """
    ctx = multiprocessing.get_context("fork")
    queue, port = ctx.Queue(), _free_port()
    procs = [ctx.Process(target=_rank_main, args=(r, 2, port, fn, queue)) for r in range(2)]
    for proc in procs:
        proc.start()
    out = {}
    for _ in procs:
        rank, status, value = queue.get(timeout=180)
        out[rank] = (status, value)
    for proc in procs:
        proc.join(timeout=30)
    return out


def test_two_process_baseline_matches_one_process(glue_dir, tmp_path):
    from conftest import compose_config, tiny_overrides_for

    cfg = compose_config("baseline", tiny_overrides_for(glue_dir) + DIST + ["method=lora"])
    results = _two_ranks(lambda: baseline_cmd.run(cfg, tmp_path / "two")["metrics"])
    assert results[0] == results[1] and results[0][0] == "ok", results
    one = baseline_cmd.run(cfg, tmp_path / "one")
    assert read_json(tmp_path / "two" / "run.json")["world_size"] == 2
    summary = read_json(tmp_path / "two" / "summary.json")
    assert summary["metrics"] == one["metrics"] and summary["train"]["examples_seen"] == 49
    assert abs(summary["history"][-1]["train_loss"] - one["history"][-1]["train_loss"]) < 1e-5


def test_two_process_run_lock_is_rank0s_and_every_rank_follows(glue_dir, tmp_path):
    """A directory held by another invocation: rank 0 is refused, rank 1 follows it (no hang)."""
    from conftest import compose_config, tiny_overrides_for

    from prunepeft.commands.common import guard_run

    cfg = compose_config("search", tiny_overrides_for(glue_dir) + SEARCH)

    def enter():
        with guard_run(tmp_path / "held", cfg):
            return "entered"

    lock = RunLock(tmp_path / "held")
    lock.acquire()
    try:
        held = _two_ranks(enter)
    finally:
        lock.release()
    message = f"is in use by pid {os.getpid()}"
    assert all(status == "error" and message in value for status, value in held.values()), held
    assert not (tmp_path / "held" / "run.json").exists()
    free = _two_ranks(enter)  # released: both ranks go in; only rank 0 holds (and frees) the lock
    assert free == {0: ("ok", "entered"), 1: ("ok", "entered")}
