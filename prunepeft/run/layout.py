"""The shape of a run directory, checked before any work starts and without its lock: which names of
the run-output contract (prunepeft.run.outputs) are directories and which are files, and the plain
names (task, model, ...) that become its path components.
"""
from __future__ import annotations

from pathlib import Path

from prunepeft.errors import UserError
from prunepeft.run import outputs
from prunepeft.run.io import RESTART_HINT
from prunepeft.run.lock import LOCK_FILE

DONE_FILE, ASIDE_DIR, LOGS = outputs.DONE, outputs.ASIDE, outputs.LOGS  # the run-output contract

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
