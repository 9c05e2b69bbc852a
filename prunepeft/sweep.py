"""Hydra callback that writes a sweep summary when a multirun ends.

Every job already records its own status in `run.json` (running / failed / done), so a failed job
is visible on its own; this callback gathers them into `<sweep dir>/sweep_summary.{json,md}`.
A re-launched sweep skips finished jobs (their DONE file) and retries the others.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from prunepeft.io import atomic_write_json, atomic_write_text, read_json


def job_status(run_dir: Path) -> dict[str, Any]:
    """Status of one job directory: done / failed / running / not started, and its headline metric."""
    info = read_json(run_dir / "run.json") if (run_dir / "run.json").exists() else {}
    status = "done" if (run_dir / "DONE").exists() else info.get("status", "not started")
    row: dict[str, Any] = {"dir": str(run_dir), "status": status, "error": info.get("error")}
    if (run_dir / "summary.json").exists():
        primary = read_json(run_dir / "summary.json").get("primary", {})
        row.update(metric=primary.get("metric"), value=primary.get("value"))
    return row


def sweep_summary(sweep_dir: Path) -> list[dict[str, Any]]:
    """One row per job directory (any directory below `sweep_dir` holding a run.json)."""
    return [job_status(p.parent) for p in sorted(Path(sweep_dir).rglob("run.json"))]


def _markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["| job | status | metric | value |", "|---|---|---|---|"]
    for r in rows:
        value = "" if r.get("value") is None else f"{r['value']:.4f}"
        lines.append(f"| {r['dir']} | {r['status']} | {r.get('metric') or ''} | {value} |")
    counts = {s: sum(r["status"] == s for r in rows) for s in ("done", "failed", "running")}
    return "\n".join(lines) + f"\n\n{len(rows)} jobs: " + ", ".join(f"{n} {s}" for s, n in counts.items()) + "\n"


class SweepSummary(Callback):
    """Write sweep_summary.json and sweep_summary.md into the sweep directory at the end of a multirun."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(str(config.hydra.sweep.dir))
        rows = sweep_summary(sweep_dir)
        atomic_write_json(sweep_dir / "sweep_summary.json", rows)
        atomic_write_text(sweep_dir / "sweep_summary.md", _markdown(rows))
        print(f"sweep summary: {sweep_dir / 'sweep_summary.md'} ({len(rows)} jobs)")
