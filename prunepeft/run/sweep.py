"""Multirun (sweep) support: job directory names, failure tolerance, and the sweep summary.

- **Directory names.** The job subdir of `search`/`baseline` ends with `${pp.tag:...}` of Hydra's
  `job.override_dirname`; the CLI limits that to the keys this sweep varies (`swept_dirname_override`),
  so `budget.params=2000,3000` gives two directories instead of one collision.
- **Failures.** In a multirun a job that fails is logged and recorded (run.json says `failed`), and
  the sweep goes on (`commands.common.run_job_tolerant`); the CLI exits 2 at the end when any job failed. Hydra 1.3's
  basic sweeper re-raises a failed job after the batch and skips the summary, and a `SystemExit`
  escapes its launchers altogether, hence no `sys.exit` inside a job.
- **Summary.** Each sweep has its own directory, `<sweep dir>/sweeps/<id>/` (`<id>` = start time and
  pid, so they sort by time): `SweepSummary` records the sweep's jobs there and rewrites its
  `sweep_summary.{json,md}` after every job (`on_job_end`, which runs in the job's own process under
  joblib/submitit), so it exists even when the sweep is cut short. A later sweep into the same sweep
  dir gets a directory of its own: earlier summaries are kept. `sweeps/current.json` names the
  latest (`latest_summary`). A job finds its own sweep in its own config, `hydra.job.env_set.
  PRUNEPEFT_SWEEP_ID` (a hydra override the sweep adds for its jobs), never through that shared pointer:
  two sweeps run side by side into one sweep dir (`make table2 & make table5`) would otherwise record
  each other's jobs, and the first to end would count the other's running job as its own failure. Not
  the process environment either: joblib's workers outlive a sweep and keep the environment they began with.
"""
from __future__ import annotations

import hashlib
import logging
import os
import re
import socket
import time
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf, read_write

from prunepeft.run import outputs
from prunepeft.errors import UserError
from prunepeft.run.io import atomic_write_json, atomic_write_text, pid_alive, read_json
from prunepeft.run.lock import dead_owner

log = logging.getLogger(__name__)

# Keys a job directory already names (task/model/strategy/seed are path components) or that do not
# change what a run computes (runs.VOLATILE_KEYS); they never go into the swept-keys tag.
DIRNAME_IGNORED = ("seed", "task", "model", "strategy", "method", "train.progress", "train.log_every", "data.dir",
                   "logger")
_IGNORED_PREFIXES = ("debug.", "extra.", "hydra.", "logger.")
_SWEEP_RECORD = outputs.SWEEP_RECORD
_MAX_TAG = 80
SWEEP_ID_ENV = "PRUNEPEFT_SWEEP_ID"  # a job's sweep, in its hydra.job.env_set (see the module docstring)
_last_failures = 0


def dirname_tag(override_dirname: str) -> str:
    """The suffix a job directory gets for its swept keys: '' or '_<k=v,...>' made path-safe.

    Path separators become '_'; a tag longer than 80 characters is cut and ends in a short hash of
    the whole, so two jobs never share a directory.
    """
    if not override_dirname:
        return ""
    tag = re.sub(r"[/\\\s'\"]+", "_", override_dirname)
    if len(tag) > _MAX_TAG:
        tag = f"{tag[:_MAX_TAG - 9]}-{hashlib.sha1(override_dirname.encode()).hexdigest()[:8]}"
    return "_" + tag


def register_resolvers() -> None:
    """Register `${pp.tag:...}` (idempotent); the command configs use it in `hydra.sweep.subdir`."""
    if not OmegaConf.has_resolver("pp.tag"):
        OmegaConf.register_new_resolver("pp.tag", lambda s: dirname_tag(str(s)))


register_resolvers()


def _ignored(key: str) -> bool:
    key = key.lstrip("+~")
    return key in DIRNAME_IGNORED or key.startswith(_IGNORED_PREFIXES)


def parse_overrides(overrides: list[str]) -> list:
    """Hydra's own parse of command-line overrides (flags dropped), with prunepeft's config groups
    visible so that `glob()` expands."""
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra._internal.utils import create_config_search_path
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser

    if GlobalHydra.instance().is_initialized():
        loader = GlobalHydra.instance().config_loader()
    else:
        loader = ConfigLoaderImpl(config_search_path=create_config_search_path("pkg://prunepeft.conf"))
    return OverridesParser.create(config_loader=loader).parse_overrides([o for o in overrides if not o.startswith("-")])


def swept_keys(overrides: list[str]) -> list[str]:
    """Keys of the sweep overrides in `overrides` (Hydra's parser: `a=1,2`, `range()`, `choice()`, ...)."""
    return [o.key_or_group for o in parse_overrides(overrides) if o.is_sweep_override() and not o.is_hydra_override()]


def swept_dirname_override(args: list[str]) -> list[str]:
    """The Hydra override that limits `job.override_dirname` to the swept keys that change a result.

    Every other override (fixed for the whole sweep, or already a path component) is excluded, so a
    job's directory reads e.g. `hybrid_budget.params=2000-s5`.
    """
    parsed = parse_overrides(args)
    keep = {o.key_or_group for o in parsed if o.is_sweep_override() and not _ignored(o.key_or_group)}
    exclude = sorted({o.key_or_group for o in parsed if not o.is_hydra_override()} - keep)
    return [f"hydra.job.config.override_dirname.exclude_keys=[{','.join(exclude)}]"]


class JobFailed:
    """What a failed multirun job returns instead of raising (see the module docstring)."""

    def __init__(self, error: str) -> None:
        self.error = error

    def __repr__(self) -> str:
        return f"JobFailed({self.error!r})"


def in_multirun() -> bool:
    """True inside a job of a Hydra multirun."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def job_status(run_dir: Path) -> dict[str, Any]:
    """Status of one job directory: done / failed / interrupted / running / stale / not started, and
    its headline metric. `stale`: run.json says running, but the process that ran it is gone (the
    run lock, `runs.RunLock`, tells: its pid is dead on this host, or nobody holds it)."""
    info = read_json(run_dir / outputs.RUN_JSON) if (run_dir / outputs.RUN_JSON).exists() else {}
    status = "done" if (run_dir / outputs.DONE).exists() else info.get("status", "not started")
    error = info.get("error")
    if status == "running" and (why := dead_owner(run_dir)):
        status, error = "stale", why
    row: dict[str, Any] = {"dir": str(run_dir), "status": status, "error": error}
    if (run_dir / outputs.SUMMARY).exists():
        primary = read_json(run_dir / outputs.SUMMARY).get("primary", {})
        row.update(metric=primary.get("metric"), value=primary.get("value"))
    return row


def _overrides_dict(overrides: list[str]) -> dict[str, str]:
    out = {}
    for item in overrides:
        key, _, value = str(item).partition("=")
        out[key.lstrip("+~")] = value
    return out


def sweep_rows(sweep_dir: Path, sweep_id: str) -> tuple[list[str], list[dict[str, Any]]]:
    """(swept keys, one row per job of sweep `sweep_id`, by job number)."""
    record = Path(sweep_dir) / _SWEEP_RECORD / sweep_id
    meta = read_json(record / outputs.SWEEP_META) if (record / outputs.SWEEP_META).exists() else {}
    jobs = []
    for path in record.glob(outputs.SWEEP_JOB_GLOB):
        try:
            jobs.append(read_json(path))
        except (OSError, ValueError):  # a record being replaced right now: the next rewrite has it
            continue
    jobs.sort(key=lambda j: j.get("num", 0))
    rows = []
    for job in jobs:
        row = {"num": job.get("num"), **job_status(Path(job["dir"]))}
        if job.get("status") == "failed":
            row.update(status="failed", error=job.get("error"))
        elif job.get("status") == "running" and row["status"] == "not started":
            # the job started but has not reached its run: alive if its process is
            row["status"] = "running"
            if job.get("host") == socket.gethostname() and job.get("pid") and not pid_alive(int(job["pid"])):
                row.update(status="stale", error=f"stale: its process (pid {job['pid']}) is gone")
        row["swept"] = {k: job.get("overrides", {}).get(k) for k in meta.get("swept", [])}
        rows.append(row)
    return list(meta.get("swept", [])), rows


def _markdown(swept: list[str], rows: list[dict[str, Any]]) -> str:
    from prunepeft.run.markdown import md_table  # pandas: only when a summary is written

    body = []
    for r in rows:
        value = "" if r.get("value") is None else f"{r['value']:.4f}"
        error = (r.get("error") or "").replace("|", "/").replace("\n", " ")[:120]
        body.append([str(r.get("num")), *(str(r["swept"].get(k, "")) for k in swept), r["status"],
                     r.get("metric") or "", value, r["dir"], error])
    lines = md_table(["job", *swept, "status", "metric", "value", "dir", "error"], body)
    counts = {s: sum(r["status"] == s for r in rows) for s in ("done", "failed", "running", "stale")}
    counts = {s: n for s, n in counts.items() if n or s in ("done", "failed")}
    return "\n".join(lines) + f"\n\n{len(rows)} jobs: " + ", ".join(f"{n} {s}" for s, n in counts.items()) + "\n"


def summary_dir(sweep_dir: Path, sweep_id: str) -> Path:
    """The directory of sweep `sweep_id`: its job records and its summary."""
    return Path(sweep_dir) / _SWEEP_RECORD / sweep_id


def latest_summary(sweep_dir: Path) -> Path | None:
    """sweep_summary.json of the latest sweep into `sweep_dir` (None before any)."""
    pointer = Path(sweep_dir) / _SWEEP_RECORD / outputs.SWEEP_CURRENT
    return summary_dir(sweep_dir, read_json(pointer)["id"]) / outputs.SWEEP_SUMMARY if pointer.exists() else None


def write_summary(sweep_dir: Path, sweep_id: str) -> list[dict[str, Any]]:
    """Rewrite this sweep's sweep_summary.json / .md (in its own directory) from its job records;
    return the rows."""
    swept, rows = sweep_rows(sweep_dir, sweep_id)
    atomic_write_json(summary_dir(sweep_dir, sweep_id) / outputs.SWEEP_SUMMARY, rows)
    atomic_write_text(summary_dir(sweep_dir, sweep_id) / outputs.SWEEP_SUMMARY_MD, _markdown(swept, rows))
    return rows


def last_sweep_failures() -> int:
    """Failed jobs of the last multirun that ended in this process (read by the CLI for its exit code)."""
    return _last_failures


class SweepSummary(Callback):
    """Record this sweep's jobs and keep `<sweep dir>/sweep_summary.{json,md}` current."""

    @staticmethod
    def _current(hydra: Any) -> tuple[Path, str | None]:
        """(the sweep directory, this sweep's id) from the job's `hydra` node."""
        sweep_dir = Path(str(hydra.sweep.dir))
        own = OmegaConf.select(hydra, f"job.env_set.{SWEEP_ID_ENV}", default=None)
        if own and (summary_dir(sweep_dir, str(own)) / outputs.SWEEP_META).exists():
            return sweep_dir, str(own)
        pointer = sweep_dir / _SWEEP_RECORD / outputs.SWEEP_CURRENT  # a job launched without the override
        sweep_id = read_json(pointer)["id"] if pointer.exists() else None
        return sweep_dir, sweep_id

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        """Start a new sweep record: its id and the keys it varies (the summary's columns)."""
        global _last_failures
        _last_failures = 0
        sweep_dir = Path(str(config.hydra.sweep.dir))
        sweep_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
        n = 1
        while summary_dir(sweep_dir, sweep_id).exists():  # two sweeps within a second: never share one
            n += 1
            sweep_id = f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-{n}"
        task = [str(o) for o in OmegaConf.to_container(config.hydra.overrides.task, resolve=False)]
        params = OmegaConf.select(config, "hydra.sweeper.params") or {}
        swept = list(dict.fromkeys([*(str(k) for k in params), *swept_keys(task)]))
        atomic_write_json(sweep_dir / _SWEEP_RECORD / sweep_id / outputs.SWEEP_META,
                          {"id": sweep_id, "swept": swept, "overrides": task, "started_at": time.time()})
        # Each job's config names the sweep it belongs to (the launcher composes every job from these
        # overrides); the pointer names the latest sweep for `latest_summary`.
        with read_write(config.hydra.overrides):
            config.hydra.overrides.hydra.append(f"++hydra.job.env_set.{SWEEP_ID_ENV}='{sweep_id}'")
        self._sweep_id = sweep_id
        atomic_write_json(sweep_dir / _SWEEP_RECORD / outputs.SWEEP_CURRENT, {"id": sweep_id})

    def _record(self, hydra: Any, **fields: Any) -> tuple[Path, str | None]:
        """Write this job's record from the job's `hydra` node (its number, directory, overrides)."""
        sweep_dir, sweep_id = self._current(hydra)
        if sweep_id is not None:
            num = int(hydra.job.num)
            overrides = _overrides_dict(list(hydra.overrides.task))
            atomic_write_json(sweep_dir / _SWEEP_RECORD / sweep_id / outputs.sweep_job(num),
                              {"num": num, "dir": str(hydra.runtime.output_dir), "overrides": overrides,
                               **fields})
        return sweep_dir, sweep_id

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        """Record the job as running (so a cut-short sweep lists it)."""
        if in_multirun():
            self._record(config.hydra, status="running", pid=os.getpid(), host=socket.gethostname())

    def on_job_end(self, config: DictConfig, job_return: Any = None, **kwargs: Any) -> None:
        """Record the job's outcome and rewrite the summary."""
        if not in_multirun():
            return
        from hydra.core.utils import JobStatus

        value = getattr(job_return, "_return_value", None)
        if getattr(job_return, "status", None) == JobStatus.FAILED:
            error = f"{type(value).__name__}: {value}"
        elif isinstance(value, JobFailed):
            error = value.error
        else:
            error = None
        sweep_dir, sweep_id = self._record(config.hydra, status="failed" if error else "finished", error=error)
        if sweep_id is not None:
            write_summary(sweep_dir, sweep_id)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        """Write the final summary and remember the failures for the CLI's exit code."""
        global _last_failures
        sweep_dir, sweep_id = self._current(config.hydra)
        sweep_id = getattr(self, "_sweep_id", None) or sweep_id  # this process started it
        if sweep_id is None:
            return
        rows = write_summary(sweep_dir, sweep_id)
        _last_failures = sum(r["status"] != "done" for r in rows)
        failed = sum(r["status"] in ("failed", "stale") for r in rows)
        print(f"sweep summary: {summary_dir(sweep_dir, sweep_id) / outputs.SWEEP_SUMMARY_MD} "
              f"({len(rows)} jobs, {failed} failed)")
