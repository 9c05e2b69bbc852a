"""A synthetic tree of run outputs in the exact formats `prunepeft search`/`baseline` write.

Shared by tests/test_report.py and tests/test_figures.py (no training: JSON files only).
"""
from __future__ import annotations

import json
from pathlib import Path

SPACE = ["lora", "adapter"]


def _write(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj), encoding="utf-8")


def _merge(base: dict, over: dict) -> dict:
    for key, value in over.items():
        base[key] = _merge(dict(base.get(key) or {}), value) if isinstance(value, dict) else value
    return base


def make_run(root: Path, rel: str, *, command: str, task: str, seed: int, value: float, model: str = "minilm_l6",
             family: str = "bert", method: str | None = None, strategy: str = "hybrid", criterion: str | None = None,
             fidelity: str = "high", lr: float = 1e-3, percent: float = 0.75, transfer: dict | None = None,
             done: bool = True, search_wall: float = 100.0, train_wall: float = 200.0, space: list | None = None,
             config_over: dict | None = None) -> Path:
    """One run directory with run.json + summary.json (+ DONE when `done`); `config_over` is merged into
    run.json's resolved config (e.g. `{"data": {"train_subset": 500}}`)."""
    run = root / rel
    search = command == "search"
    metric = "pearson" if task == "stsb" else "accuracy"
    config = {"command": command, "seed": seed, "scale": "cpu", "method": method or "fft",
              "model": {"name": model, "family": family, "kind": "pretrained"}, "task": {"name": task},
              "strategy": {"name": strategy, "criterion": criterion, "combine": "paper", "from_run": None},
              "search": {"fidelity": fidelity}, "search_space": space or SPACE, "train": {"lr_peft": lr, "lr_head": lr},
              "data": {"train_subset": 2000, "dir": None}, "logger": {"name": "none"}, "extra": {}}
    _merge(config, config_over or {})
    status = "done" if done else "running"
    _write(run / "run.json", {"command": command, "seed": seed, "status": status, "config": config})
    summary = {"command": command, "task": task, "model": model, "method": "prunepeft" if search else method,
               "seed": seed, "metrics": {"validation": {metric: value}},
               "primary": {"split": "validation", "metric": metric, "value": value}, "best_epoch": 2,
               "best_metrics": {"validation": {metric: value + 0.01}},
               "params": {"peft": 170000, "head": 1538, "base": 22713728, "percent": percent},
               "train": {"epochs": 2, "wall_s": train_wall, "examples_seen": 4000}, "lr": lr, "transfer": transfer}
    if search:
        summary.update(strategy=strategy, criterion=criterion, fidelity=fidelity,
                       search={"wall_s": search_wall, "epoch_equivalents": 0.9, "rounds": 3})
    _write(run / "summary.json", summary)
    if done:
        (run / "DONE").write_text("done\n")
    return run


def add_search_files(run: Path, kept: dict[int, list[str]], num_layers: int = 6, seed: int = 1,
                     space: list | None = None) -> None:
    """found_config.json, warmup.json and rounds.jsonl of a search run (`kept`: layer -> unit types)."""
    if seed == 1:  # the layout of the brief: {"layer": [units]}
        found = {"layers": {str(i): [{"type": t} for t in kept.get(i, [])] for i in range(num_layers)}}
    else:  # the layout `prunepeft search` writes: a layer list plus the flat unit keys
        found = {"layers": [{"layer": i, "units": [{"type": t} for t in kept.get(i, [])]} for i in range(num_layers)],
                 "units": [f"{i}:{t}" for i in sorted(kept) for t in kept[i]], "search_space": space or SPACE}
    _write(run / "found_config.json", {"family": "bert", "model_id": "x", "num_layers": num_layers,
                                       "params": 170000, "percent": 0.75, **found})
    _write(run / "warmup.json", {
        "tendency": {"taylor": {"b0:lora": 0.6}, "weight": {"b0:lora": 0.4}},
        "assignment": {"b0:lora": "taylor"}, "snapshots": 4, "k": 2,
        "pick_counts": {"taylor": {"0:lora": 3, "1:adapter": 1}, "weight": {"5:adapter": 4},
                        "activation": {"2:lora": 2, "2:adapter": 2}}})
    rounds = []
    for r in (1, 2, 3):
        rounds.append({"round": r, "active_before": [], "removed": [f"{r}:lora"], "params_left": 400000 - r * 80000,
                       "percent_left": 1.96 - r * 0.4,
                       "dev": {"validation": {"accuracy": 0.6 + 0.02 * r + 0.001 * seed}},
                       "scores": {}, "picks": {"taylor": [f"{r}:lora"], "gradient": ["0:adapter"]}})
    (run / "rounds.jsonl").write_text("".join(json.dumps(x) + "\n" for x in rounds), encoding="utf-8")
