"""What the commands print at the end: the found configuration (one row per layer) and the metric."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from prunepeft.run.io import read_json


def _size(unit: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in unit.get("sizes", {}).items())


def print_found(path: Path, console: Console | None = None) -> None:
    """Print found_config.json as a per-layer table (which units, their sizes)."""
    found = read_json(path)
    params = found["params"]
    table = Table(title=f"found configuration: {params['peft']:,} PEFT params "
                        f"({params['percent_of_base']:.3f}% of the backbone)")
    table.add_column("layer", justify="right")
    table.add_column("units")
    table.add_column("sizes")
    for entry in found["layers"]:
        units = entry["units"]
        table.add_row(str(entry["layer"]), " + ".join(u["type"] for u in units) or "-",
                      "; ".join(_size(u) for u in units))
    (console or Console()).print(table)


def print_result(summary: dict[str, Any], console: Console | None = None) -> None:
    """One line with the headline dev metric (last epoch) and the best epoch beside it."""
    primary = summary.get("primary", {})
    value = primary.get("value")
    shown = "n/a" if value is None else f"{value:.4f}"
    best = summary.get("best_metrics", {}).get(primary.get("split"), {}).get(primary.get("metric"))
    best_txt = "" if best is None else f" (best epoch {summary.get('best_epoch')}: {best:.4f})"
    (console or Console()).print(
        f"[bold]{summary.get('task')}[/bold] {primary.get('split')} {primary.get('metric')} = "
        f"[bold]{shown}[/bold]{best_txt}; trainable PEFT params {summary['params']['peft']:,} "
        f"({summary['params']['percent']:.3f}%)")


def print_signal(rounds: list[dict[str, Any]], console: Console | None = None) -> None:
    """How far to trust the found configuration: the run's own signal (`search.diagnostics`)."""
    from prunepeft.analysis.diagnostics import signal_summary

    sig = signal_summary(rounds)
    if sig is None:
        return

    def f(v: Any) -> str:
        return "n/a" if v is None else f"{v:+.2f}"

    pct = sig["decision_percentile"]
    nothing = f"; {sig['learned_nothing']} of {sig['rounds']} rounds LEARNED NOTHING" if sig["learned_nothing"] else ""
    (console or Console()).print(
        f"signal of this search ({sig['rounds']} rounds): Spearman(p, −importance) {f(sig['spearman_combined'])} "
        f"against {f(sig['spearman_null'])} for random scores (null-corrected {f(sig['corrected'])}); removed sets at "
        f"percentile {'n/a' if pct is None else f'{100 * pct:.0f}'} of random removals (50 = chance, lower = "
        f"better){nothing}")
