"""The run lock: one invocation at a time per run directory (docs/architecture.md, faults).

`RunLock` takes an OS lock (flock) on `<run>/.lock` and records the owner's pid, host and start
time there. The kernel drops the lock when its process dies, so the sweep summary can tell a live
run from a dead one (`dead_owner`) without taking the lock.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from pathlib import Path
from typing import Any

from prunepeft.run import outputs
from prunepeft.errors import UserError
from prunepeft.run.io import pid_alive, read_run_file

LOCK_FILE = outputs.LOCK


class RunLock:
    """An exclusive OS lock (flock) on `<run>/.lock`, holding the owner's pid, host and start time.

    The kernel drops the lock when its process dies (also on SIGKILL), so a lock file that
    still names an owner but can be locked is stale: it is taken over with a message.
    """

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_FILE
        self.fd: int | None = None

    def _holder(self) -> dict[str, Any]:
        """The owner record ({} when empty, torn, or valid JSON that is not an object)."""
        return read_run_file(self.path, "lock")

    def acquire(self) -> str | None:
        """Take the lock; return a note when a stale lock was taken over.

        Raises:
            UserError: the directory is not writable, or another live invocation holds the lock
                (naming its pid and host).
        """
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            raise UserError(f"output directory {str(self.run_dir)!r} is not writable ({err.strerror}); "
                            "point hydra.run.dir (or out=) at a writable directory") from None
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = self._holder()
            os.close(self.fd)
            self.fd = None
            raise UserError(f"{str(self.run_dir)!r} is in use by pid {holder.get('pid', '?')} on host "
                            f"{holder.get('host', '?')} (since {holder.get('since', '?')}); wait for it to "
                            "finish or pick another directory (hydra.run.dir=...)") from None
        previous = self._holder()
        me = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        try:
            os.ftruncate(self.fd, 0)
            os.pwrite(self.fd, json.dumps(me).encode(), 0)
            os.fsync(self.fd)
        except OSError as err:
            self.release()
            raise UserError(f"cannot write the run lock {str(self.path)!r} ({err.strerror or err}); free space "
                            "or point hydra.run.dir at a writable directory, then re-run") from None
        if not isinstance(previous.get("pid"), int) or previous["pid"] <= 0:
            return None
        here = previous.get("host") == me["host"]
        gone = "is gone" if here and not pid_alive(previous["pid"]) else "no longer holds it"
        return (f"taking over the stale lock of {str(self.run_dir)!r}: pid {previous['pid']} on host "
                f"{previous.get('host', '?')} {gone} (its attempt was killed)")

    def release(self) -> None:
        """Clear the owner record (a clean exit leaves no stale lock) and unlock."""
        if self.fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(self.fd, 0)
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)
        self.fd = None


def lock_free(path: Path) -> bool:
    """True when nobody holds the run lock (`RunLock`, an flock) on `path`; we do not keep it."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError:  # a file system without flock: cannot tell
        return False
    finally:
        os.close(fd)  # closing the descriptor drops our lock
    return True


def dead_owner(run_dir: Path) -> str | None:
    """Why a run that says `running` is not: its lock's process is gone on this host, or the lock is free.

    Returns None when it may still run (its lock is held, or its owner is on another host, which
    a pid cannot be checked on).
    """
    lock = Path(run_dir) / LOCK_FILE
    holder = read_run_file(lock, "lock")
    pid, host = holder.get("pid"), holder.get("host")
    if host and host != socket.gethostname():
        return None
    if isinstance(pid, int) and pid > 0 and not pid_alive(pid):
        return f"stale: its process (pid {pid} on {host}) is gone; re-run to resume it"
    if lock_free(lock):
        return "stale: no process holds its run lock (killed?); re-run to resume it"
    return None
