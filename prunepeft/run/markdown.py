"""Markdown pipe tables, byte-stable: the sweep summary (run/sweep.py) and the report's tables write them."""
from __future__ import annotations


def md_table(header: list[str], rows: list[list[str]], align: list[str] | None = None) -> list[str]:
    """A markdown pipe table (pandas `to_markdown`, i.e. tabulate) as lines: `| a | b |`, one separator
    segment per column from `align` (`:--` left, `--:` right, default `---`), cells as given.

    Cells are neither padded to the column's width nor parsed as numbers (`0.8050` stays `0.8050`):
    tabulate's no-alignment padding and a separator built from `align`, so the bytes are those of the
    tables written by hand before (and of the committed ones in BENCHMARKS.md).
    """
    import pandas as pd  # here, not at import: the run wing is imported by the CLI, which must stay light
    from tabulate import DataRow, TableFormat

    seps = align or ["---"] * len(header)
    row = DataRow("|", "|", "|")
    fmt = TableFormat(lineabove=None, linebelowheader=lambda _w, _a: "|" + "|".join(seps) + "|",
                      linebetweenrows=None, linebelow=None, headerrow=row, datarow=row, padding=1,
                      with_header_hide=None)
    frame = pd.DataFrame([[str(c) for c in r] for r in rows], columns=list(header), dtype=object)
    return frame.to_markdown(index=False, tablefmt=fmt, disable_numparse=True, stralign=None,
                             numalign=None).split("\n")
