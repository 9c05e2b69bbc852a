"""How many runs each paper-table target launches per SCALE, and how long a run took where one was measured.

    python -m benchmarks.plan [SEEDS=1] [CRITERIA=weight,taylor]     # `make help` prints this

A dry composition of make/tables.mk's sweeps: for each recipe line `$(PRUNEPEFT) <command> -m
experiment=<preset> $(SWEEP) <overrides>` of the targets table2 ... table6, the command's config is
composed with the preset (Hydra, nothing runs) and the number of jobs is the cross product of the
preset's `hydra.sweeper.params` at that scale, a sweep on the line replacing the param of its key.
Runs shared between tables (Table 4 reuses Table 2's) are counted in both: a finished one is skipped.

Time per run: the median `wall_s` of finished runs (run.json) under benchmarks/results/ and the
scale's default runs root (outputs/<scale>) with the same command, strategy (search) or method
(baseline), model, task, device kind, training subset and epochs as the line's jobs; "not measured"
when there is none.
"""
from __future__ import annotations

import json
import math
import re
import shlex
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from prunepeft.run import outputs

REPO = Path(__file__).resolve().parents[2]  # the repository (benchmarks/lib/ is two below it)
MK = REPO / "make" / "tables.mk"
SCALES = ("smoke", "cpu", "gpu", "paper")
GPU_SCALES = ("gpu", "paper")  # the scales that run on an accelerator (the others on CPU)
TARGET = re.compile(r"^(table\d+):")
LINE = re.compile(r"^\t\$\(PRUNEPEFT\)\s+(\w+)\s+-m\s+experiment=(\w+)\s+\$\(SWEEP\)\s*(.*)$")
VAR = re.compile(r"\$\((\w+)\)")
DEFAULT = re.compile(r"^(\w+)\s*\?=\s*(.*?)\s*(#.*)?$")


@dataclass
class Line:
    """One sweep of a target: `prunepeft <command> -m experiment=<experiment> $(SWEEP) <overrides>`."""

    command: str
    experiment: str
    overrides: list[str]


@dataclass
class Plan:
    """One (target, scale): jobs and the measured wall-clock per run."""

    target: str
    scale: str
    jobs: int = 0
    measured: list[tuple[int, float]] = field(default_factory=list)  # (jobs, median s) per measured line
    runs: set[str] = field(default_factory=set)  # the measured runs behind them

    def time_text(self) -> str:
        if not self.measured:
            return "not measured"
        jobs = sum(j for j, _ in self.measured)
        per_run = sum(j * s for j, s in self.measured) / jobs
        n = len(self.runs)
        text = f"≈ {_duration(per_run)}/run (from {n} measured run{'s' * (n != 1)})"
        if jobs == self.jobs:
            return text + f", ≈ {_duration(per_run * self.jobs)} in all"
        return text + f" for {jobs} of the {self.jobs} runs"


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def read_targets(text: str, variables: dict[str, str] | None = None) -> dict[str, list[Line]]:
    """The sweep lines of each tableN target of a makefile, `$(VAR)`s substituted (`?=` defaults, then `variables`)."""
    values = {m.group(1): m.group(2) for m in map(DEFAULT.match, text.splitlines()) if m}
    values.update({k: v for k, v in (variables or {}).items() if v})
    targets: dict[str, list[Line]] = {}
    current = None
    for raw in text.splitlines():
        if (m := TARGET.match(raw)) is not None:
            current = m.group(1)
            targets[current] = []
        elif current and raw.startswith("\t"):
            if (m := LINE.match(raw)) is not None:
                rest = VAR.sub(lambda v: values.get(v.group(1), ""), m.group(3).split(" #")[0])
                targets[current].append(Line(m.group(1), m.group(2), shlex.split(rest)))
        elif raw.strip() and not raw.startswith("#"):
            current = None
    return targets


def _values(parser: Any, key: str, value: str) -> int:
    """How many jobs `key=value` makes (a sweep `a,b,c` makes 3)."""
    (o,) = parser.parse_overrides([f"{key}={value}"])
    return len(list(o.sweep_string_iterator())) if o.is_sweep_override() else 1


def _device_kind(device: Any) -> str:
    return "cuda" if str(device).startswith("cuda") else str(device or "?")


def _number(value: Any) -> Optional[float]:
    return None if value is None else float(value)


def measured_runs(roots: list[Path]) -> list[dict]:
    """Finished runs' keys and wall_s from run.json under `roots` (committed results, local outputs)."""
    out = []
    for root in roots:
        for path in sorted(root.rglob(outputs.RUN_JSON)) if root.is_dir() else []:
            try:
                info = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            config = info.get("config") or {}
            if info.get("status") != "done" or not isinstance(info.get("wall_s"), (int, float)):
                continue
            out.append({"command": info.get("command"), "model": (config.get("model") or {}).get("name"),
                        "task": (config.get("task") or {}).get("name"), "device": _device_kind(info.get("device")),
                        "subset": _number((config.get("data") or {}).get("train_subset")),
                        "epochs": _number((config.get("train") or {}).get("epochs")), "wall_s": float(info["wall_s"]),
                        "arm": (config.get("strategy") or {}).get("name") if info.get("command") == "search"
                        else config.get("method"), "path": str(path.parent)})
    return out


def _epochs(profile: str) -> Optional[float]:
    from omegaconf import OmegaConf

    path = REPO / "prunepeft" / "conf" / "train" / f"{profile}.yaml"
    return _number(OmegaConf.load(path).get("epochs")) if path.is_file() else None


def plan(targets: dict[str, list[Line]], scales: tuple[str, ...] = SCALES, seeds: str | None = None,
         runs: list[dict] | None = None) -> list[Plan]:
    """Jobs and measured time per (target, scale); `seeds` replaces every sweep's seeds (make's SEEDS)."""
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf import OmegaConf

    from prunepeft.config.schema import register_configs

    parser = OverridesParser.create()
    runs = measured_runs([REPO / "benchmarks" / "results"]) if runs is None else runs
    plans = {(t, s): Plan(t, s) for t in targets for s in scales}
    register_configs()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_module(config_module="prunepeft.conf", version_base="1.3"):
            for target, lines in targets.items():
                for line in lines:
                    parsed = parser.parse_overrides(line.overrides + ([f"seed={seeds}"] if seeds else []))
                    fixed = [o.input_line for o in parsed if not o.is_sweep_override()]
                    cfg = compose(config_name=line.command, overrides=[f"experiment={line.experiment}", *fixed],
                                  return_hydra_config=True)
                    for scale in scales:
                        cfg.scale = scale
                        params = {str(k): str(v) for k, v in cfg.hydra.sweeper.params.items()}
                        for o in parsed:  # the line's own values win over the preset's (Hydra's rule)
                            params[o.get_key_element()] = o.input_line.split("=", 1)[1]
                        jobs = math.prod(_values(parser, k, v) for k, v in params.items())
                        p = plans[(target, scale)]
                        p.jobs += jobs
                        arm = "method" if line.command == "baseline" else "strategy.name"
                        params.setdefault(arm, str(OmegaConf.select(cfg, arm)))
                        match = _matching(runs, line.command, params, scale, OmegaConf.select(cfg, "data.train_subset"),
                                          parser)
                        if match:
                            p.measured.append((jobs, statistics.median(r["wall_s"] for r in match)))
                            p.runs.update(r["path"] for r in match)
    finally:
        GlobalHydra.instance().clear()
    return list(plans.values())


def _matching(runs: list[dict], command: str, params: dict[str, str], scale: str, subset: Any, parser: Any) -> list[dict]:
    """The runs with this line's command, strategy or method, model, task, device kind, training subset and epochs."""
    def choices(key: str) -> set[str]:
        if key not in params:
            return set()
        (o,) = parser.parse_overrides([f"{key}={params[key]}"])
        return set(o.sweep_string_iterator()) if o.is_sweep_override() else {str(o.value())}

    models, tasks = choices("model"), choices("task")
    arms = choices("method" if command == "baseline" else "strategy.name")
    epochs = {_epochs(p) for p in choices("train")}
    device = "cuda" if scale in GPU_SCALES else "cpu"
    return [r for r in runs
            if r["command"] == command and r["arm"] in arms and r["model"] in models and r["task"] in tasks and r["device"] == device
            and r["subset"] == _number(subset) and r["epochs"] in epochs]


def render(plans: list[Plan]) -> str:
    totals: dict[str, int] = {}
    lines = ["Runs per paper-table target and SCALE: a dry composition of make/tables.mk's sweeps (finished runs are",
             "skipped; Table 4 reuses Table 2's). Time per run: median wall-clock of finished runs with the same command,",
             "strategy or method, model, task, device, training subset and epochs (benchmarks/results/, outputs/<scale>/):"]
    for p in plans:
        lines.append(f"  {p.target:<8} SCALE={p.scale:<6} {p.jobs:>5} runs   {p.time_text()}")
        totals[p.scale] = totals.get(p.scale, 0) + p.jobs
    lines.append("  tables   " + ", ".join(f"SCALE={s}: {n} runs" for s, n in totals.items()))
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    args = dict(a.split("=", 1) for a in argv if "=" in a)
    targets = read_targets(MK.read_text(encoding="utf-8"), {"CRITERIA": args.get("CRITERIA", "")})
    scales = tuple(args["SCALE"].split(",")) if args.get("SCALE") else SCALES
    roots = [REPO / "benchmarks" / "results", *(REPO / "outputs" / s for s in scales)]
    print(render(plan(targets, scales, args.get("SEEDS") or None, measured_runs(roots))))
    return 0

