"""Throughput of `train.group_by_length` side by side with random batches (BENCHMARKS §6).

Trains MiniLM-L6 (the whole backbone: the cost that padding multiplies is the backbone's forward and
backward, whatever is trainable) for one epoch over the same SST-2 rows, alternating the two samplers
so that both see the same machine load, and writes wall and CPU seconds and padded tokens per arm.

    python -m benchmarks.group_by_length --rows 256 --repeats 3 --out benchmarks/results/group_by_length
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from prunepeft.config.compose import compose_config
from prunepeft.config.typed import DataSettings
from prunepeft.data import build_task_data, make_loader
from prunepeft.models.loading import load_backbone


def one_epoch(model, loader) -> tuple[float, float, int]:
    """(wall s, CPU s of this process, padded tokens) of one training epoch over `loader`."""
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    model.train()
    start, cpu, tokens = time.perf_counter(), time.process_time(), 0
    for batch in loader:
        tokens += int(batch["input_ids"].numel())
        out = model(**batch)
        out.loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    return time.perf_counter() - start, time.process_time() - cpu, tokens


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", default="sst2")
    ap.add_argument("--rows", type=int, default=512)
    ap.add_argument("--max-length", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    cfg = compose_config("search", [f"task={args.task}", "model=minilm_l6", "train=cpu",
                                    f"train.max_length={args.max_length}", f"data.train_subset={args.rows}"])
    model, tok = load_backbone(cfg.model, int(cfg.task.num_labels), seed=0)
    ds = build_task_data(DataSettings.from_config(cfg), tok).train
    rows = []
    for rep in range(args.repeats):
        for grouped in (False, True):
            loader = make_loader(ds, tok, args.batch_size, shuffle=True, seed=rep, group_by_length=grouped)
            wall, cpu, tokens = one_epoch(model, loader)
            rows.append({"repeat": rep, "group_by_length": grouped, "wall_s": round(wall, 3), "cpu_s": round(cpu, 3),
                         "examples_per_s": round(args.rows / wall, 2), "padded_tokens": tokens})
            print(rows[-1], flush=True)
    by = {g: [r for r in rows if r["group_by_length"] == g] for g in (False, True)}
    # CPU seconds, not wall: the machine these ran on was shared, and a process's CPU time moves far
    # less with other load than its wall-clock does (both are kept per run).
    speedups = [a["cpu_s"] / b["cpu_s"] for a, b in zip(by[False], by[True])]
    summary = {"task": args.task, "rows": args.rows, "max_length": args.max_length, "batch_size": args.batch_size,
               "threads": torch.get_num_threads(), "runs": rows,
               "cpu_speedup_per_repeat": [round(s, 3) for s in speedups],
               "padded_token_ratio": round(sum(r["padded_tokens"] for r in by[False])
                                           / sum(r["padded_tokens"] for r in by[True]), 3)}
    print(json.dumps({k: v for k, v in summary.items() if k != "runs"}))
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        (Path(args.out) / "throughput.json").write_text(json.dumps(summary, indent=1) + "\n")


if __name__ == "__main__":
    main()
