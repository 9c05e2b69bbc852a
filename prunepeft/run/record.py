"""The run-output contract (docs/architecture.md#the-run-output-contract): one directory per run.

`run.json` (versions, device, seed, timings, status), `events.jsonl` (step-level), `summary.json`,
`DONE`. A run re-invoked on a finished directory skips; on an unfinished one the command resumes
from what it finds (the search keeps a checkpoint).

Faults (docs/architecture.md): one invocation at a time per directory (`run_lock.RunLock`, an OS file
lock), torn log lines cut off before a resume (`heal_logs`), the data a run trained on recorded
and checked on resume (`RunDir.start(..., data=)`, from `TaskData.identity`), and `debug.kill_at` points where tests and
`benchmarks/faults.py` kill a run at an exact moment.
"""
from __future__ import annotations

import contextlib
import os
import platform
import shutil
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prunepeft.run import outputs
from prunepeft.errors import UserError
from prunepeft.run.lock import LOCK_FILE, RunLock  # noqa: F401  (re-exported: part of the run contract)
from prunepeft.run.io import (
    RESTART_HINT,
    WriteFailed,
    append_jsonl,
    atomic_write_json,
    atomic_write_text,
    heal_jsonl,
    on_write,
    read_run_file,
)

DONE_FILE, ASIDE_DIR, LOGS = outputs.DONE, outputs.ASIDE, outputs.LOGS  # the run-output contract
RECOVERY_HINT = f"to start this run over, {RESTART_HINT}"
# Keys that may differ between invocations of the same run: they change how it is watched, where the
# data is read from or how a sweep is laid out, not what it computes (`debug.*` crashes a run on
# purpose to test resuming; `extra.*` is the experiment presets' bookkeeping, so a run shared by
# two paper tables is trained once and skipped by the second sweep).
# `restart` says what to do with the directory, not what to compute. `data.dir` may move: the data's
# content is checked instead (`TaskData.identity`).
# `logger` (the experiment tracker, prunepeft.run.trackers) only watches a run.
VOLATILE_KEYS = ("debug", "train.progress", "train.log_every", "data.dir", "extra", "restart", "logger", "arm")

# -- debug kill points ---------------------------------------------------------------------------
# `write`: inside every atomic write, after the temp file is complete and before its rename (run
# files, an export's files, a report's files). Commands without a `debug` config (export, report)
# are armed by the environment variable KILL_AT_ENV (same syntax).
DEBUG_POINTS = ("event", "between_checkpoint_writes", "after_checkpoint", "write")
KILL_AT_ENV = "PRUNEPEFT_DEBUG_KILL_AT"
# USR2: what submitit sends before a job's time limit (it checkpoints and requeues the job).
DEBUG_SIGNALS = {"KILL": signal.SIGKILL, "TERM": signal.SIGTERM, "INT": signal.SIGINT, "USR2": signal.SIGUSR2}
_kill_at: tuple[str, int, int] | None = None
_hits: dict[str, int] = {}
_env_read = False


def parse_kill_at(value: str | None) -> tuple[str, int, int] | None:
    """`debug.kill_at="<point>:<n>[:<signal>]"` -> (point, n, signal number).

    The process sends itself the signal (KILL, the default; TERM, INT or USR2) the n-th time it
    reaches `point`: a crash or a stop at an exact moment, never a timed one.

    Raises:
        UserError: an unknown point or signal, or a count that is not a positive integer.
    """
    if value in (None, ""):
        return None
    point, _, rest = str(value).partition(":")
    count, _, sig = rest.partition(":")
    sig = sig or "KILL"
    if point not in DEBUG_POINTS or not count.isdigit() or int(count) < 1 or sig not in DEBUG_SIGNALS:
        raise UserError(f"debug.kill_at must be <point>:<n>[:<signal>] with n >= 1, got {value!r}; "
                        f"valid points: {', '.join(DEBUG_POINTS)}; signals: {', '.join(DEBUG_SIGNALS)}")
    return point, int(count), int(DEBUG_SIGNALS[sig])


def configure_debug(kill_at: str | None) -> None:
    """Arm (or, with None, disarm) the kill point of `debug.kill_at` for this process."""
    global _kill_at
    _kill_at = parse_kill_at(kill_at)
    _hits.clear()


def _kill(signum: int) -> None:
    # A real signal, not an exception: under SIGKILL no handler, finally block or atexit runs,
    # exactly like a crash; TERM and INT take the command's normal interrupt path.
    os.kill(os.getpid(), signum)


def debug_point(name: str) -> None:
    """Mark a place where a crash is interesting; signals the process there when armed for it."""
    global _env_read, _kill_at
    if _kill_at is None and not _env_read:
        _env_read = True
        _kill_at = parse_kill_at(os.environ.get(KILL_AT_ENV))
    if _kill_at is None or _kill_at[0] != name:
        return
    _hits[name] = _hits.get(name, 0) + 1
    if _hits[name] == _kill_at[1]:
        _kill(_kill_at[2])


on_write(lambda name: debug_point(name))


# -- data identity ---------------------------------------------------------------------------------


def data_differences(old: dict[str, Any] | None, new: dict[str, Any] | None) -> list[str]:
    """"split: N rows sha256 X -> M rows sha256 Y" for every split whose content changed."""
    if not old or not new:
        return []
    a, b = old.get("splits", {}), new.get("splits", {})
    show = lambda fp: f"{fp.get('rows')} rows, sha256 {str(fp.get('sha256'))[:12]}" if fp else "absent"  # noqa: E731
    return [f"{split}: {show(a.get(split))} -> {show(b.get(split))}"
            for split in sorted(set(a) | set(b)) if a.get(split) != b.get(split)]


def _flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    """{"a.b": leaf} for nested dicts (lists are leaves)."""
    if not isinstance(obj, dict):
        return {prefix: obj}
    out: dict[str, Any] = {}
    for key, value in obj.items():
        out.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


def config_differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """"key: old -> new" for every leaf that differs, volatile keys ignored, sorted by key.

    A key the old record lacks is not a difference: the run predates the key, and a new key's default
    keeps the behaviour it had before the key existed (the convention for every key added), so runs
    committed by an earlier version stay reusable (`make tables` skips them, studies accumulate).
    """
    a, b = _flatten(old), _flatten(new)
    volatile = lambda key: any(key == v or key.startswith(v + ".") for v in VOLATILE_KEYS)  # noqa: E731
    return [f"{k}: {a.get(k, '<unset>')!r} -> {b.get(k, '<unset>')!r}"
            for k in sorted(a) if not volatile(k) and a.get(k) != b.get(k)]


def _world_size() -> int:
    import torch.distributed as dist

    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def _barrier() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()


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


# What each name of the run-output contract must be when it exists: a directory or a regular file.
RUN_DIRS = (outputs.CHECKPOINT, outputs.HYDRA_DIR, outputs.TRACKERS, ASIDE_DIR)
RUN_FILES = (outputs.RUN_JSON, outputs.SUMMARY, outputs.FOUND_CONFIG, outputs.WARMUP, outputs.ROUNDS,
             outputs.EVENTS, outputs.UNITS, outputs.HEAD, DONE_FILE, outputs.RANK_STAGE,
             outputs.BACKBONE_PRUNE, LOCK_FILE)


def check_layout(path: Path) -> None:
    """Refuse a run directory whose paths have the wrong type, before any work starts.

    A file where `checkpoint/` belongs would otherwise make the search silently start over (and
    fail at its first checkpoint); a directory where `summary.json` belongs fails at the end.

    Raises:
        UserError: `path` itself is not a directory, or one of its contract names has the wrong type.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"the run directory {str(path)!r} is a file; remove it or point hydra.run.dir elsewhere")
    if not path.is_dir():
        return
    wrong = [f"{name} is not a directory" for name in RUN_DIRS if (path / name).exists() and not (path / name).is_dir()]
    wrong += [f"{name} is a directory" for name in RUN_FILES if (path / name).is_dir()]
    for name in (outputs.CHECKPOINT_STATE,):
        if (path / outputs.CHECKPOINT / name).is_dir():
            wrong.append(f"{outputs.CHECKPOINT}/{name} is a directory")
    if wrong:
        raise UserError(f"{str(path)!r} is not a run directory as prunepeft writes it ({'; '.join(wrong)}); "
                        f"move the odd path away, or {RESTART_HINT}")


def check_plain_name(key: str, value: object) -> None:
    """A name that becomes a path component (task.name, model.name, ...) must be a plain name.

    Plain: not empty, no path separator, not `.`/`..`, no NUL, no leading `-` or `~`. Checked
    before Hydra creates the run directory, so nothing is ever created outside the output root.

    Raises:
        UserError: naming the key and the value.
    """
    text = "" if value is None else str(value)
    bad = (not text or text in (".", "..") or any(c in text for c in ("/", "\\", "\0")) or text[0] in "-~"
           or text != text.strip() or any(ord(c) < 32 for c in text))
    if bad:
        raise UserError(f"{key}={text!r} is not a plain name (it becomes part of a path): use letters, digits, "
                        "'_', '-' and '.', without '/' or '..'")


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
