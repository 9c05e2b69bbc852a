"""Atomic file writes: every output is written to a temp file in the same directory, then renamed."""
from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any


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


def file_mode() -> int:
    """The mode a new regular file gets: 0666 minus the process umask."""
    mask = os.umask(0)  # the only portable way to read the umask is to set it (and put it back)
    os.umask(mask)
    return 0o666 & ~mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to `path` atomically (temp file + fsync + rename); rank 0 only."""
    path = Path(path)
    if not writes_files():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp creates 0600 and os.replace keeps it: results must be readable by collaborators
        # (0644 under umask 022, 0664 under 002), like any file open() creates.
        os.chmod(fd, file_mode())
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


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
    """Read a JSON file."""
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def append_jsonl(path: str | os.PathLike, record: dict) -> None:
    """Append one JSON line (flushed; rank 0 only). Readers skip a torn last line, see `read_jsonl`."""
    path = Path(path)
    if not writes_files():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(dumps_strict(record) + "\n")
        fh.flush()


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

