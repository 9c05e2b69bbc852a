"""The run record (docs/architecture.md#the-run-output-contract): one directory per run, written by `RunDir`.

`run.json` (versions, device, seed, timings, status), `events.jsonl` (step-level), `summary.json`,
`DONE`. A run re-invoked on a finished directory skips; on an unfinished one the command resumes
from what it finds (the search keeps a checkpoint).

Faults (docs/architecture.md): one invocation at a time per directory (`run_lock.RunLock`, an OS file
lock), torn log lines cut off before a resume (`heal_logs`), the data a run trained on recorded
and checked on resume (`RunDir.start(..., data=)`, from `TaskData.identity`), and `debug.kill_at` points where tests and
`benchmarks/faults.py` kill a run at an exact moment.

The parts that need no open run live beside it: `run.layout` (the directory's shape, checked before
the lock), `run.identity` (the config, data and versions a resume must match), `run.faults` (the
kill points) and `run.lock`; their names stay importable from here.
"""
from __future__ import annotations

import contextlib
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prunepeft.run import outputs
from prunepeft.errors import UserError
from prunepeft.run.faults import (  # noqa: F401  (re-exported: callers import the kill points from here too)
    KILL_AT_ENV,
    configure_debug,
    debug_point,
    parse_kill_at,
)
from prunepeft.run.identity import VOLATILE_KEYS, config_differences, data_differences, library_versions  # noqa: F401
from prunepeft.run.layout import ASIDE_DIR, DONE_FILE, LOGS, check_layout, check_plain_name  # noqa: F401
from prunepeft.run.lock import LOCK_FILE, RunLock  # noqa: F401  (re-exported: part of the run contract)
from prunepeft.run.io import (
    RESTART_HINT,
    WriteFailed,
    append_jsonl,
    atomic_write_json,
    atomic_write_text,
    heal_jsonl,
    read_run_file,
)

RECOVERY_HINT = f"to start this run over, {RESTART_HINT}"


def _world_size() -> int:
    import torch.distributed as dist

    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def _barrier() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()


# -- observers ----------------------------------------------------------------------------------
# Called as fn(run, kind, record) for every run's records: kind "start" (run.json's content), "event"
# (one events.jsonl record) or "finish" (summary.json's content). prunepeft.run.trackers forwards them
# to an experiment tracker, so the training code needs no change.
_observers: list[Any] = []


@contextlib.contextmanager
def observing(fn: Any) -> Any:
    """Call `fn(run, kind, record)` for every start / event / finish of a RunDir inside the block."""
    _observers.append(fn)
    try:
        yield fn
    finally:
        _observers.remove(fn)


def _notify(run: RunDir, kind: str, record: dict[str, Any]) -> None:
    from prunepeft.run.io import writes_files

    if not writes_files():  # data parallel: trackers log from rank 0 only, like the run files
        return
    for fn in list(_observers):
        fn(run, kind, record)


@dataclass
class RunDir:
    """A run directory and the files every command writes into it."""

    path: Path
    started: float = field(default_factory=time.time)

    def __post_init__(self) -> None:
        self.path = Path(self.path)
        check_layout(self.path)
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise UserError(f"cannot create the run directory {str(self.path)!r} ({err.strerror or err}); "
                            "point hydra.run.dir at a writable directory") from None

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
        previous = self.read_info()
        if "config" not in previous:
            return
        diff = config_differences(previous["config"], config)
        if diff:
            shown = "; ".join(diff[:5]) + (f"; ... ({len(diff)} keys)" if len(diff) > 5 else "")
            state = "a finished" if self.done else "an unfinished"
            raise UserError(f"{str(self.path)!r} holds {state} run with a different configuration ({shown}); "
                            "pick another directory (hydra.run.dir=...) or delete this one")

    def read_info(self) -> dict[str, Any]:
        """run.json of a previous attempt ({} when there is none).

        Raises:
            UserError: run.json exists but is not a JSON object (with the way to recover).
        """
        path = self.file(outputs.RUN_JSON)
        if not path.exists():
            return {}
        return read_run_file(path, "object")

    def start(self, command: str, seed: int, config: dict[str, Any], device: str,
              data: dict[str, Any] | None = None) -> None:
        """Write run.json with status `running` (kept from a previous attempt: attempts counted).

        `data`: the fingerprint of the data the run uses (`TaskData.identity`), recorded and checked.

        Raises:
            UserError: the data's content differs from the data an unfinished earlier attempt used.
        """
        previous = self.read_info()
        changed = data_differences(previous.get("data"), data)
        if changed:
            raise UserError(f"{str(self.path)!r} holds an unfinished run that used different data ({'; '.join(changed)}); "
                            f"resume it with the data it started on, or {RECOVERY_HINT.replace('to start', 'start')}")
        self.info = {
            "command": command,
            "seed": seed,
            "device": device,
            "world_size": _world_size(),  # data-parallel processes (prunepeft.train.distributed)
            "argv": sys.argv,
            "versions": library_versions(),
            "status": "running",
            "attempts": int(previous.get("attempts", 0)) + 1,
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "config": config,
        }
        if data is not None:
            self.info["data"] = data
        atomic_write_json(self.file(outputs.RUN_JSON), self.info)
        self._write_hydra_record(config)
        _notify(self, "start", self.info)

    def _write_hydra_record(self, config: dict[str, Any]) -> None:
        """`.hydra/config.yaml` and `overrides.yaml` of the invocation that (re)started this run.

        The configs set `hydra.output_subdir: null`: Hydra would write `.hydra/` before any check,
        also for an invocation that is then refused or skipped.
        """
        from omegaconf import OmegaConf

        atomic_write_text(self.file(outputs.HYDRA_CONFIG), OmegaConf.to_yaml(OmegaConf.create(config)))
        try:
            from hydra.core.hydra_config import HydraConfig

            overrides = list(HydraConfig.get().overrides.task)
        except ValueError:  # called outside a Hydra app (tests, the API)
            overrides = []
        atomic_write_text(self.file(outputs.HYDRA_OVERRIDES), OmegaConf.to_yaml(OmegaConf.create(overrides)))

    def event(self, **record: Any) -> None:
        """Append one step-level event to events.jsonl (tagged with the attempt that wrote it)."""
        record.setdefault("time", round(time.time() - self.started, 3))
        info = getattr(self, "info", None)
        if info is not None:
            record.setdefault("attempt", info.get("attempts"))
        append_jsonl(self.file(outputs.EVENTS), record)
        _notify(self, "event", record)
        debug_point("event")

    def write_json(self, name: str, obj: Any) -> Path:
        return atomic_write_json(self.file(name), obj)

    def finish(self, summary: dict[str, Any], status: str = "done") -> None:
        """Write summary.json, mark run.json finished, and touch DONE (last, so DONE means complete)."""
        self.write_json(outputs.SUMMARY, summary)
        info = getattr(self, "info", None) or read_run_file(self.file(outputs.RUN_JSON), "object")
        info.update(status=status, wall_s=round(time.time() - self.started, 2),
                    finished_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        atomic_write_json(self.file(outputs.RUN_JSON), info)
        atomic_write_text(self.file(DONE_FILE), "done\n")
        _notify(self, "finish", summary)
        _barrier()  # data parallel: the other ranks read the outputs only once rank 0 wrote them

    def fail(self, error: str) -> None:
        """Record a failed attempt in run.json (the directory stays resumable).

        Called from an `except` block: a KeyboardInterrupt there (Ctrl-C, or SIGTERM turned into
        one by the command's signal handler) is recorded as status `interrupted`.
        """
        info = getattr(self, "info", None)
        if info is None:
            return
        # SystemExit: submitit requeueing the job (SIGUSR2 before its time limit), also interrupted.
        status = "interrupted" if isinstance(sys.exc_info()[1], (KeyboardInterrupt, SystemExit)) else "failed"
        info.update(status=status, error=error, wall_s=round(time.time() - self.started, 2))
        # A failed write (a full disk) is what may have ended the run: the record is best effort,
        # and run.json's `running` with a free lock reads as stale, which resumes the same way.
        with contextlib.suppress(WriteFailed):
            atomic_write_json(self.file(outputs.RUN_JSON), info)

    def set_aside(self) -> Path | None:
        """Move every output of earlier attempts to `.aside/<time>/` (`restart=true`); logs stay.

        Returns:
            The directory the files went to, or None when there was nothing to move.
        """
        keep = {LOCK_FILE, ASIDE_DIR}
        moving = [p for p in self.path.iterdir() if p.name not in keep and p.suffix != outputs.LOG_SUFFIX]
        if not moving:
            return None
        target = self.path / ASIDE_DIR / time.strftime("%Y%m%d-%H%M%S")
        n = 1
        while target.exists():
            target, n = target.with_name(f"{target.name.split('.')[0]}.{n}"), n + 1
        target.mkdir(parents=True)
        for p in moving:
            shutil.move(str(p), str(target / p.name))
        return target

    def heal_logs(self) -> list[str]:
        """Cut torn last lines off the append-only logs before this attempt appends to them.

        Returns:
            One note per log that was healed.

        Raises:
            UserError: a log is damaged in the middle (not just torn at the end).
        """
        notes = []
        for name in LOGS:
            try:
                cut = heal_jsonl(self.file(name))
            except ValueError as err:
                raise UserError(f"{err}: the log is damaged; {RECOVERY_HINT}") from None
            if cut:
                notes.append(f"{name}: cut off a torn last line ({cut} bytes) left by a killed attempt")
        return notes
