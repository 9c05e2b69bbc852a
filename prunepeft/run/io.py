"""Run files: atomic writes (temp file in the same directory, then renamed) and one guarded reader.

Every read of a run file (run.json, summary.json, found_config.json, the safetensors files, the lock
record, an export's files) goes through `read_run_file`: a missing, unreadable or damaged file is a
`RunFileError` (a UserError: one line naming the file and the way out, exit code 2). Every write
goes through `atomic_write_bytes` / `append_jsonl`: an OSError there (no space, file too large,
read-only) is a `WriteFailed` (also a UserError and still an OSError); the run stays resumable.
A temp file or directory left by a writer that was killed is removed by the next writer of the same
target (`remove_stale_temps`): its name carries the writer's pid.
"""
from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from prunepeft.run import outputs
from prunepeft.errors import UserError

# -- errors ----------------------------------------------------------------------------------------
RESTART_HINT = (f"re-run the same command with restart=true (moves the old files to <run>/{outputs.ASIDE}/), "
                "or delete the run directory")
EXPORT_HINT = "re-export it (prunepeft export run=<the run> out=<this directory>)"
_EXPORT_MARKERS = ("prunepeft_export.json", "adapter_config.json")  # what makes a directory an export
# Run files whose content is a JSON object (anything else there is damage).
JSON_OBJECTS = (outputs.RUN_JSON, outputs.SUMMARY, outputs.FOUND_CONFIG, outputs.WARMUP, outputs.RANK_STAGE,
                outputs.BACKBONE_PRUNE, outputs.CHECKPOINT_STATE, _EXPORT_MARKERS[0])
READ_KINDS = ("json", "object", "safetensors", "bytes", "text", "lock")


class RunFileError(UserError):
    """A run file is missing, unreadable or damaged; the message names it and the way out."""


class DamagedRunFile(RunFileError, ValueError):
    """The file is there but its content is not what its kind says (truncated, wrong type)."""


class MissingRunFile(RunFileError, FileNotFoundError):
    """The file is not there."""


class UnreadableRunFile(RunFileError, OSError):
    """The OS refused the read (permissions, a directory where the file belongs, I/O error)."""


class WriteFailed(UserError, OSError):
    """An OSError while writing a run file (no space, file too large, read-only file system)."""


def way_out(path: str | os.PathLike) -> str:
    """How to recover from a damaged `path`: re-export (an export's file), or restart the run."""
    path = Path(path)
    if path.name == outputs.LOCK:
        return "delete it when no invocation is running"
    if any((path.parent / marker).is_file() for marker in _EXPORT_MARKERS) or path.name in _EXPORT_MARKERS:
        return EXPORT_HINT
    return RESTART_HINT


def read_run_file(path: str | os.PathLike, kind: str = "json") -> Any:
    """Read one run file through the one guard.

    Args:
        path: the file.
        kind: `json` (any JSON value), `object` (a JSON object), `safetensors` ({name: tensor}),
            `bytes`, `text` (UTF-8) or `lock` (the run lock's owner record: {} unless it is a JSON
            object; the lock is only advisory, so a damaged record never stops a run).

    Raises:
        RunFileError: one line naming the file, what is wrong and the way out (`way_out`);
            a MissingRunFile (also a FileNotFoundError), UnreadableRunFile (an OSError) or
            DamagedRunFile (a ValueError).
    """
    if kind not in READ_KINDS:
        raise ValueError(f"unknown run-file kind {kind!r}; valid: {', '.join(READ_KINDS)}")
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        if kind == "lock":
            return {}
        raise MissingRunFile(f"{str(path)!r} is missing; {way_out(path)}") from None
    except OSError as err:
        if kind == "lock":
            return {}
        raise UnreadableRunFile(f"{str(path)!r} is unreadable ({err.strerror or err}); {way_out(path)}") from None
    if kind == "bytes":
        return data
    if kind == "lock":
        return _lock_record(data)
    try:
        if kind == "safetensors":
            from safetensors.torch import load

            return load(data)
        text = data.decode("utf-8")
        if kind == "text":
            return text
        value = json.loads(text)
    except Exception as err:  # noqa: BLE001 - json, unicode and safetensors errors all mean "damaged"
        what = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise DamagedRunFile(f"{str(path)!r} is damaged ({type(err).__name__}: {what}); {way_out(path)}") from None
    if kind == "object" and not isinstance(value, dict):
        raise DamagedRunFile(f"{str(path)!r} is damaged (a JSON {type(value).__name__}, not an object); "
                             f"{way_out(path)}")
    return value


def _lock_record(data: bytes) -> dict[str, Any]:
    """The lock's owner record, or {} when it is empty, torn or not a JSON object."""
    try:
        value = json.loads(data or b"{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _write_error(path: Path, err: OSError) -> WriteFailed:
    why = {errno.ENOSPC: "no space left on the device: free some", errno.EFBIG: "file too large: raise the "
           "file-size limit (ulimit -f)", errno.EROFS: "read-only file system: point the output at a writable one",
           errno.EDQUOT: "disk quota exceeded: free some space"}.get(err.errno or 0, err.strerror or str(err))
    out = WriteFailed(f"cannot write {str(path)!r} ({why}); then re-run the same command: the run resumes")
    out.errno = err.errno  # (strerror / filename stay unset: OSError would print them instead of the line)
    return out


# -- temp files ------------------------------------------------------------------------------------
def temp_prefix(path: Path) -> str:
    """The name prefix of a temp file or directory for `path`: hidden, with the writer's pid."""
    return f".{path.name}.{os.getpid()}."


def remove_stale_temps(path: str | os.PathLike) -> list[Path]:
    """Remove the temp files and directories of `path` left by writers that are gone (killed mid-write).

    A temp name is `.<name>.<pid>.<random>[.tmp]`; one whose pid is not alive on this host is stale.
    Returns the removed paths.
    """
    import shutil

    path = Path(path)
    pattern = re.compile(rf"^\.{re.escape(path.name)}\.(\d+)\.[^.]+(\.tmp)?$")
    removed = []
    try:
        siblings = list(path.parent.iterdir())
    except OSError:
        return []
    for sib in siblings:
        match = pattern.match(sib.name)
        if not match or pid_alive(int(match.group(1))):
            continue
        with contextlib.suppress(OSError):
            shutil.rmtree(sib) if sib.is_dir() and not sib.is_symlink() else sib.unlink()
            removed.append(sib)
    return removed


def pid_alive(pid: int) -> bool:
    """True unless `pid` is certainly gone on this host (a pid we may not signal counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def _default(obj: Any) -> Any:
    # numpy / torch scalars and paths appear in summaries; make them plain JSON.
    if hasattr(obj, "item"):
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, (Path, set, tuple)):
        return str(obj) if isinstance(obj, Path) else list(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def writes_files() -> bool:
    """False on data-parallel ranks other than 0 (prunepeft.train.distributed): only rank 0 writes.

    Every rank runs the same code; the writes below are skipped elsewhere, so no call site has to
    know about ranks.
    """
    import torch.distributed as dist

    return not (dist.is_available() and dist.is_initialized() and dist.get_rank() != 0)


def file_mode(directory: bool = False) -> int:
    """The mode a new regular file gets: 0666 minus the process umask (a directory: 0777 minus it).

    The one place the umask is read; `follow_umask` applies it to what a writer created its own way.
    """
    mask = os.umask(0)  # the only portable way to read the umask is to set it (and put it back)
    os.umask(mask)
    return (0o777 if directory else 0o666) & ~mask


def follow_umask(path: str | os.PathLike, tree: bool = False) -> Path:
    """Give `path` (with `tree`, everything under it too) the mode `open()` / `mkdir` would: 0666 /
    0777 minus the umask, so results are readable by collaborators (0644/0755 under umask 022).

    For every writer that bypasses the umask: `tempfile.mkstemp` (0600), `tempfile.mkdtemp` (0700)
    and `safetensors.save_file` (0600, inside peft's `save_pretrained`). Rank 0 only, like the writes.
    """
    path = Path(path)
    if not writes_files():
        return path
    targets = [path, *(sorted(path.rglob("*")) if tree and path.is_dir() else [])]
    for target in targets:
        if not target.is_symlink():
            os.chmod(target, file_mode(directory=target.is_dir()))
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to `path` atomically (temp file + fsync + rename); rank 0 only."""
    path = Path(path)
    if not writes_files():
        return path
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temps(path)
        fd, tmp = tempfile.mkstemp(prefix=temp_prefix(path), suffix=".tmp", dir=path.parent)
    except OSError as err:
        raise _write_error(path, err) from None
    try:
        # mkstemp creates 0600 and os.replace keeps it: results must be readable by collaborators
        # (0644 under umask 022, 0664 under 002), like any file open() creates.
        os.chmod(fd, file_mode())
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        _debug_point("write")
        os.replace(tmp, path)
    except BaseException as err:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(err, OSError) and not isinstance(err, UserError):
            raise _write_error(path, err) from None
        raise
    return path


_write_hooks: list[Any] = []


def on_write(fn: Any) -> None:
    """Call `fn("write")` between a temp file's fsync and its rename (`prunepeft.run.record` registers its
    `debug_point` here: `debug.kill_at=write:<n>` kills a process inside a write)."""
    if fn not in _write_hooks:
        _write_hooks.append(fn)


def _debug_point(name: str) -> None:
    for fn in list(_write_hooks):
        fn(name)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write `text` (UTF-8) to `path` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def finite_json(obj: Any) -> Any:
    """`obj` with every non-finite float (NaN, ±inf) replaced by None.

    Python's json writes NaN as a bare `NaN` literal, which strict JSON readers (jq, JavaScript,
    pandas with `lines=True`) refuse; None (`null`) says "no value" in every reader.
    """
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_json(v) for v in obj]
    return obj


def dumps_strict(obj: Any, **kwargs: Any) -> str:
    """`json.dumps` that always yields strict JSON (non-finite floats -> null, see `finite_json`)."""
    return json.dumps(finite_json(obj), default=_default, allow_nan=False, **kwargs)


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write `obj` as indented, strict JSON to `path` atomically."""
    return atomic_write_text(path, dumps_strict(obj, indent=2) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON file through the guard (`read_run_file`); the run files of `JSON_OBJECTS` must be objects.

    Raises:
        RunFileError: missing, unreadable or damaged (one line with the way out).
    """
    return read_run_file(path, "object" if Path(path).name in JSON_OBJECTS else "json")


def append_jsonl(path: str | os.PathLike, record: dict) -> None:
    """Append one JSON line (flushed; rank 0 only). Readers skip a torn last line, see `read_jsonl`."""
    path = Path(path)
    if not writes_files():
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(dumps_strict(record) + "\n")
            fh.flush()
    except OSError as err:
        raise _write_error(path, err) from None


def heal_jsonl(path: str | os.PathLike) -> int:
    """Cut a torn last line (a write killed half-way) off a JSON-lines file before appending to it.

    Without this, the next `append_jsonl` continues on the torn line and every reader stops there
    (all later rows are lost). Returns the number of bytes removed.

    Raises:
        ValueError: a line other than the last is not JSON (the file is damaged, not just torn).
    """
    path = Path(path)
    if not path.exists() or not writes_files():
        return 0
    data = path.read_bytes()
    keep = data.rfind(b"\n") + 1  # everything after the last newline is a torn fragment
    lines = data[:keep].split(b"\n")[:-1]  # the complete lines
    bad = [i for i, line in enumerate(lines) if line.strip() and not _parses(line)]
    if bad and bad != [len(lines) - 1]:
        raise ValueError(f"{path}: line {bad[0] + 1} is not JSON")
    if bad:  # a truncation that ends exactly on a newline: the last complete line is torn too
        keep -= len(lines[-1]) + 1
    if keep < len(data):
        with open(path, "r+b") as fh:
            fh.truncate(keep)
            fh.flush()
            os.fsync(fh.fileno())
    return len(data) - keep


def _parses(line: bytes) -> bool:
    try:
        json.loads(line)
    except ValueError:
        return False
    return True


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """Read a JSON-lines file, ignoring a torn (partially written) last line."""
    path = Path(path)
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            break
    return out

