"""Tables 2-6 and Figures 1/3 of arXiv 2506.07587 from run outputs on disk (nothing is re-run).

`collect_runs(dir)` reads every run under a directory into a DataFrame; `build_tables` turns it
into tables (rendered by `render.to_markdown/to_latex/to_csv`); `build_figures` draws the figures.
"""
from prunepeft.report.collect import collect_runs
from prunepeft.report.figures import build_figures
from prunepeft.report.render import to_csv, to_latex, to_markdown
from prunepeft.report.tables import TABLES, build_tables, load_reference

__all__ = ["TABLES", "build_figures", "build_tables", "collect_runs", "load_reference", "to_csv", "to_latex",
           "to_markdown"]
