"""What a run is, for deciding whether a re-invocation continues the same run: its config (less the keys
that only change how it is watched), the content of its data, and the library versions it ran with
(recorded in run.json by `prunepeft.run.record.RunDir.start`, compared there on every resume).
"""
from __future__ import annotations

import platform
from typing import Any

# Keys that may differ between invocations of the same run: they change how it is watched, where the
# data is read from or how a sweep is laid out, not what it computes (`debug.*` crashes a run on
# purpose to test resuming; `extra.*` is the experiment presets' bookkeeping, so a run shared by
# two paper tables is trained once and skipped by the second sweep).
# `restart` says what to do with the directory, not what to compute. `data.dir` may move: the data's
# content is checked instead (`TaskData.identity`).
# `logger` (the experiment tracker, prunepeft.run.trackers) only watches a run.
VOLATILE_KEYS = ("debug", "train.progress", "train.log_every", "data.dir", "extra", "restart", "logger", "arm")
# The exceptions to that convention: a key added together with a change of behaviour. A run recorded before
# it did what `value` does, wherever `applies(its flattened config)` holds; so such a run is a different
# configuration (refused on resume, split in the report), never silently reused or pooled.
IMPLIED_WHEN_ABSENT: dict[str, tuple[str, Any]] = {
    # every head started at 0 before 2026-12-05 (prunepeft/models/head.py); read by regression heads only
    "train.regression_head_bias": ("zero", lambda flat: str(flat.get("task.num_labels")) == "1"),
}


def with_implied(flat: dict[str, Any]) -> dict[str, Any]:
    """`flat` (a flattened config) with the values IMPLIED_WHEN_ABSENT gives the keys it lacks."""
    out = dict(flat)
    for key, (value, applies) in IMPLIED_WHEN_ABSENT.items():
        if key not in out and applies(out):
            out[key] = value
    return out


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
    committed by an earlier version stay reusable (`make tables` skips them, studies accumulate). The
    exceptions (IMPLIED_WHEN_ABSENT) are compared with the value the old run implied.
    """
    a, b = with_implied(_flatten(old)), _flatten(new)
    volatile = lambda key: any(key == v or key.startswith(v + ".") for v in VOLATILE_KEYS)  # noqa: E731
    return [f"{k}: {a.get(k, '<unset>')!r} -> {b.get(k, '<unset>')!r}"
            for k in sorted(a) if not volatile(k) and a.get(k) != b.get(k)]


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
