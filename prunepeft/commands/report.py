"""`prunepeft report`: Tables 2-6 (markdown, LaTeX, CSV) and Figures 1/3 (PNG, PDF) from run outputs.

    prunepeft report runs=outputs/cpu out=reports/cpu
    prunepeft report runs=outputs/cpu out=reports/cpu 'tables=[table2,table5]' figures=false
    prunepeft report reference_csv=my_paper_numbers.csv

Reads only files under `runs` (summary.json, run.json, found_config.json, warmup.json,
rounds.jsonl, DONE); never trains. A run is a directory with run.json (tracker folders and exports
are not). Unfinished runs (no DONE) are listed in report.md, not used. Runs of one method, model and
task that differ in a result-changing config key get one row each (runs.csv: `fingerprint`).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig
from rich.console import Console

from prunepeft.commands.common import run_in_hydra
from prunepeft.config.schema import register_configs
from prunepeft.errors import UserError, check_choice
from prunepeft.run.io import atomic_write_text

log = logging.getLogger(__name__)


def _index(runs_dir: Path, out: Path, df, tables: list, figures: list) -> str:
    """report.md: what was read, every table, the figures, and the runs left out."""
    damaged = df[df["unreadable"] != ""] if "unreadable" in df else df.iloc[:0]
    done, todo = df[df["complete"]], df[~df["complete"] & ~df.index.isin(damaged.index)]
    lines = ["# prunepeft report", "", f"Runs read from `{runs_dir}`: {len(done)} finished, {len(todo)} unfinished "
             "(unfinished runs are not used). Paper: arXiv 2506.07587.", ""]
    if len(damaged):
        lines += ["## Runs with unreadable files", "",
                  "Warning: these files exist but are not valid JSON; a run without a readable summary.json "
                  "is in no table.", ""]
        lines += [f"- `{r.run}`: {r.unreadable}" for r in damaged.itertuples()] + [""]
    for _, markdown in tables:
        lines += [markdown, ""]
    if figures:
        lines += ["## Figures", ""] + [f"- [{f.name}]({f.png.relative_to(out).as_posix()}) "
                                       f"({f.panels} panels)" for f in figures] + [""]
    if len(todo):
        lines += ["## Unfinished runs (not in any table)", ""]
        lines += [f"- `{r.run}` ({r.status})" for r in todo.itertuples()] + [""]
    return "\n".join(lines)


def validate(cfg: DictConfig):
    """The cheap input checks, run by the CLI before Hydra creates `out` (and its log file).

    Returns:
        The paper's reference numbers (`load_reference`), read once here.

    Raises:
        UserError: `runs` is not a directory, `out` is a file, an unknown table name, or an
            unreadable `reference_csv`.
    """
    from prunepeft.report import TABLES, load_reference

    if Path(cfg.out).exists() and not Path(cfg.out).is_dir():
        raise UserError(f"out={cfg.out!r} is a file; choose a directory for the report")
    if not Path(cfg.runs).is_dir():
        raise UserError(f"runs={cfg.runs!r} is not a directory; point runs= at the outputs of "
                        "`prunepeft search`/`prunepeft baseline` (e.g. runs=outputs/cpu)")
    for name in cfg.tables:
        check_choice("table", str(name), TABLES)
    return load_reference(cfg.reference_csv)


def run(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """Build the tables `cfg.tables` (and the figures when `cfg.figures`) into `run_dir`.

    Raises:
        UserError: `runs` is not a directory or holds no run, an unknown table name, or an
            unreadable `reference_csv` — all checked before anything is written.
    """
    from prunepeft.report import build_figures, build_tables, collect_runs
    from prunepeft.report.render import to_csv, to_latex, to_markdown
    from prunepeft.report.headroom import build_headroom
    from prunepeft.report.signal import build_signal

    runs_dir, out = Path(cfg.runs), Path(run_dir)
    reference = validate(cfg)
    names = [str(n) for n in cfg.tables]
    df = collect_runs(runs_dir)
    if df.empty:
        raise UserError(f"no runs found under {str(runs_dir)!r}: no run.json below it; "
                        "run `prunepeft search`/`prunepeft baseline` first or point runs= elsewhere")
    tables = build_tables(df, names, reference)
    written: list[tuple[str, str]] = []
    for table in tables:
        md = to_markdown(table)
        atomic_write_text(out / f"{table.key}.md", md + "\n")
        atomic_write_text(out / f"{table.key}.tex", to_latex(table))
        atomic_write_text(out / f"{table.key}.csv", to_csv(table))
        written.append((table.key, md))
    signal = build_signal(df, out)  # runs measured with search.diagnostics, and arms compared by seed
    if signal:
        written.append(("signal", signal))
    headroom = build_headroom(df, out)  # envelopes of random configurations (env<j>-s<seed>), arms placed in them
    if headroom:
        written.append(("headroom", headroom))
    atomic_write_text(out / "runs.csv", df.drop(columns=["path", "metrics", "config_keys"], errors="ignore")
                      .to_csv(index=False, lineterminator="\n"))
    figures = build_figures(df, out / "figures") if cfg.figures else []
    atomic_write_text(out / "report.md", _index(runs_dir, out, df, written, figures))
    n_done = int(df["complete"].sum())
    for r in df[df["unreadable"] != ""].itertuples():
        Console(stderr=True).print(f"warning: {r.path}: cannot read {r.unreadable}; listed under "
                                   "'Runs with unreadable files' in report.md")
    Console().print(f"[bold]report[/]: {n_done} finished runs ({len(df) - n_done} unfinished) from {runs_dir} -> "
                    f"{out}: {', '.join(names) or 'no tables'}, {len(figures)} figures (report.md)")
    return {"out": str(out), "tables": [k for k, _ in written], "figures": [f.name for f in figures],
            "runs": len(df), "finished": n_done}


register_configs()


@hydra.main(config_path="../conf", config_name="report", version_base="1.3")
def hydra_entry(cfg: DictConfig) -> None:
    """Hydra app of `prunepeft report` (dispatched by prunepeft.cli)."""
    run_in_hydra(run, cfg)
