"""Debug kill points (`debug.kill_at`): where tests and `benchmarks/faults.py` crash or stop a run at an
exact moment, to prove it resumes (docs/architecture.md#faults).

A point is a name the code marks with `debug_point(name)`: `event` (every events.jsonl record),
`between_checkpoint_writes` / `after_checkpoint` (the search checkpoint, prunepeft.pruning.checkpoint)
and `write` (inside every atomic write, `prunepeft.run.io.on_write`).
"""
from __future__ import annotations

import os
import signal

from prunepeft.errors import UserError
from prunepeft.run.io import on_write

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
