"""The run-output contract (DESIGN.md "Outputs"): one directory per run.

`run.json` (versions, device, seed, timings, status), `events.jsonl` (step-level), `summary.json`,
`DONE`. A run re-invoked on a finished directory skips; on an unfinished one the command resumes
from what it finds (the search keeps a checkpoint).
"""
from __future__ import annotations

import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prunepeft.errors import UserError
from prunepeft.io import append_jsonl, atomic_write_json, atomic_write_text, read_json

DONE_FILE = "DONE"
# Keys that may differ between invocations of the same run: they change how it is watched, where the
# data is read from or how a sweep is laid out, not what it computes (`debug.*` crashes a run on
# purpose to test resuming; `extra.*` is the experiment presets' bookkeeping, so a run shared by
# two paper tables is trained once and skipped by the second sweep).
VOLATILE_KEYS = ("debug", "train.progress", "train.log_every", "data.dir", "extra")


def _flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    """{"a.b": leaf} for nested dicts (lists are leaves)."""
    if not isinstance(obj, dict):
        return {prefix: obj}
    out: dict[str, Any] = {}
    for key, value in obj.items():
        out.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


def config_differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """"key: old -> new" for every leaf that differs, volatile keys ignored, sorted by key."""
    a, b = _flatten(old), _flatten(new)
    volatile = lambda key: any(key == v or key.startswith(v + ".") for v in VOLATILE_KEYS)  # noqa: E731
    return [f"{k}: {a.get(k, '<unset>')!r} -> {b.get(k, '<unset>')!r}"
            for k in sorted(set(a) | set(b)) if not volatile(k) and a.get(k) != b.get(k)]


def library_versions() -> dict[str, str]:
    """Versions of the libraries a result depends on (recorded in run.json)."""
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for name in ("prunepeft", "torch", "transformers", "datasets", "hydra-core", "peft"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            continue
    return out


@dataclass
class RunDir:
    """A run directory and the files every command writes into it."""

    path: Path
    started: float = field(default_factory=time.time)

    def __post_init__(self) -> None:
        self.path = Path(self.path)
        self.path.mkdir(parents=True, exist_ok=True)

    def file(self, name: str) -> Path:
        return self.path / name

    @property
    def done(self) -> bool:
        """True when a previous invocation finished this run."""
        return self.file(DONE_FILE).exists()

    def check_config(self, config: dict[str, Any]) -> None:
        """Refuse to skip or resume a run that was started with a different configuration.

        Without this, `prunepeft search task=rte train.lr_peft=5e-4` in the default directory of an
        earlier lr=1e-3 run would print the old result as if it were the new one (or resume the old
        search with new settings).

        Raises:
            UserError: naming the differing keys and how to get a fresh directory.
        """
        previous = read_json(self.file("run.json")) if self.file("run.json").exists() else {}
        if "config" not in previous:
            return
        diff = config_differences(previous["config"], config)
        if diff:
            shown = "; ".join(diff[:5]) + (f"; ... ({len(diff)} keys)" if len(diff) > 5 else "")
            state = "a finished" if self.done else "an unfinished"
            raise UserError(f"{str(self.path)!r} holds {state} run with a different configuration ({shown}); "
                            "pick another directory (hydra.run.dir=...) or delete this one")

    def start(self, command: str, seed: int, config: dict[str, Any], device: str) -> None:
        """Write run.json with status `running` (kept from a previous attempt: attempts counted)."""
        previous = read_json(self.file("run.json")) if self.file("run.json").exists() else {}
        self.info = {
            "command": command,
            "seed": seed,
            "device": device,
            "argv": sys.argv,
            "versions": library_versions(),
            "status": "running",
            "attempts": int(previous.get("attempts", 0)) + 1,
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "config": config,
        }
        atomic_write_json(self.file("run.json"), self.info)
        self._write_hydra_record(config)

    def _write_hydra_record(self, config: dict[str, Any]) -> None:
        """`.hydra/config.yaml` and `overrides.yaml` of the invocation that (re)started this run.

        The configs set `hydra.output_subdir: null`: Hydra would write `.hydra/` before any check,
        also for an invocation that is then refused or skipped.
        """
        from omegaconf import OmegaConf

        atomic_write_text(self.file(".hydra/config.yaml"), OmegaConf.to_yaml(OmegaConf.create(config)))
        try:
            from hydra.core.hydra_config import HydraConfig

            overrides = list(HydraConfig.get().overrides.task)
        except ValueError:  # called outside a Hydra app (tests, the API)
            overrides = []
        atomic_write_text(self.file(".hydra/overrides.yaml"), OmegaConf.to_yaml(OmegaConf.create(overrides)))

    def event(self, **record: Any) -> None:
        """Append one step-level event to events.jsonl."""
        record.setdefault("time", round(time.time() - self.started, 3))
        append_jsonl(self.file("events.jsonl"), record)

    def write_json(self, name: str, obj: Any) -> Path:
        return atomic_write_json(self.file(name), obj)

    def finish(self, summary: dict[str, Any], status: str = "done") -> None:
        """Write summary.json, mark run.json finished, and touch DONE (last, so DONE means complete)."""
        self.write_json("summary.json", summary)
        info = getattr(self, "info", None) or read_json(self.file("run.json"))
        info.update(status=status, wall_s=round(time.time() - self.started, 2),
                    finished_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        atomic_write_json(self.file("run.json"), info)
        atomic_write_text(self.file(DONE_FILE), "done\n")

    def fail(self, error: str) -> None:
        """Record a failed attempt in run.json (the directory stays resumable)."""
        info = getattr(self, "info", None)
        if info is None:
            return
        info.update(status="failed", error=error, wall_s=round(time.time() - self.started, 2))
        atomic_write_json(self.file("run.json"), info)
