"""A table model and its three renderings: markdown, LaTeX (booktabs) and CSV.

As in the paper's tables, the best value of a column is bold and the second best underlined
(markdown: `**best**`, `<u>second</u>`). Only measured rows are ranked; the paper's numbers are a
separate block, labelled as the paper's, never ranked with or mixed into ours.
"""
from __future__ import annotations

import io
import math
from dataclasses import dataclass, field

import pandas as pd

from prunepeft.report.aggregate import Cell

MISSING = "—"
Row = tuple[str, ...]


@dataclass
class Column:
    """A value column; `better` = "higher", "lower" or None (never marked)."""

    name: str
    better: str | None = "higher"


@dataclass
class Table:
    """One paper table built from run outputs (see prunepeft.report.tables)."""

    key: str
    title: str
    index: list[str]
    columns: list[Column]
    rows: list[Row] = field(default_factory=list)
    cells: dict[tuple[Row, str], Cell] = field(default_factory=dict)
    deltas: dict[tuple[Row, str], Cell] = field(default_factory=dict)
    delta_to: str = "PrunePEFT"
    legend: str = ""
    notes: list[str] = field(default_factory=list)
    paper: pd.DataFrame | None = None  # index columns + one column per value column, strings

    def cell(self, row: Row, col: str) -> Cell:
        return self.cells.get((row, col), Cell())

    def marks(self) -> dict[tuple[Row, str], str]:
        """{(row, column): "best" | "second"}, ranked on the displayed (rounded) means.

        Rows are ranked within their model (the first index column): comparing a 6-layer MiniLM
        with Llama-3-8B in one column says nothing. Ties share a mark; one value is never marked.
        """
        out: dict[tuple[Row, str], str] = {}
        for model in dict.fromkeys(r[0] for r in self.rows):
            rows = [r for r in self.rows if r[0] == model]
            for col in self.columns:
                vals = {r: round(c.mean, c.digits) for r in rows if not (c := self.cell(r, col.name)).missing}
                if col.better is None or len(vals) < 2:
                    continue
                ranked = sorted(set(vals.values()), reverse=col.better == "higher")
                for r, v in vals.items():
                    if v == ranked[0]:
                        out[(r, col.name)] = "best"
                    elif len(ranked) > 1 and v == ranked[1]:
                        out[(r, col.name)] = "second"
        return out


def fmt(cell: Cell, signed: bool = False, tex: bool = False) -> str:
    """`71.0 ± 1.2 (n=3)`; one seed: `71.0 (n=1)`; `show_std=False`: `71.0`; missing: `—`."""
    if cell.missing:
        return "--" if tex else MISSING
    num = f"{cell.mean:+.{cell.digits}f}" if signed else f"{cell.mean:.{cell.digits}f}"
    if not cell.show_std:
        return num
    pm = " $\\pm$ " if tex else " ± "
    std = "" if math.isnan(cell.std) else f"{pm}{cell.std:.{cell.digits}f}"
    n = f" {{\\scriptsize ({cell.n})}}" if tex else f" (n={cell.n})"
    return f"{num}{std}{n}"


def _md_table(header: list[str], rows: list[list[str]], n_index: int) -> list[str]:
    align = [":--"] * n_index + ["--:"] * (len(header) - n_index)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    return lines + ["| " + " | ".join(r) + " |" for r in rows]


def to_markdown(t: Table) -> str:
    """Markdown: measured table, paired differences, notes, then the paper's numbers."""
    marks, names = t.marks(), [c.name for c in t.columns]
    out = [f"## {t.title}", ""]
    if not t.rows:
        out += ["No finished runs for this table.", ""]
    else:
        body = []
        for r in t.rows:
            cells = []
            for c in names:
                s, m = fmt(t.cell(r, c)), marks.get((r, c))
                cells.append(f"**{s}**" if m == "best" else f"<u>{s}</u>" if m == "second" else s)
            body.append([*r, *cells])
        out += _md_table([*t.index, *names], body, len(t.index)) + [""]
        if t.legend:
            out += [t.legend, ""]
    delta_cols = [c for c in names if any((r, c) in t.deltas for r in t.rows)]
    delta_rows = [r for r in t.rows if any((r, c) in t.deltas for c in delta_cols)]
    if delta_rows:
        out += [f"Paired per-seed difference to {t.delta_to} (row − {t.delta_to}, same model, task and seed; "
                "mean ± std over shared seeds, n = pairs):", ""]
        body = [[*r, *(fmt(t.deltas.get((r, c), Cell()), signed=True) for c in delta_cols)] for r in delta_rows]
        out += _md_table([*t.index, *delta_cols], body, len(t.index)) + [""]
    out += [f"- {n}" for n in t.notes] + ([""] if t.notes else [])
    if t.paper is not None and not t.paper.empty:
        out += [f"Reported in the paper (arXiv 2506.07587, {t.key.replace('table', 'Table ')}): "
                f"{_paper_caption(t)} numbers from the paper, single runs on GPUs, not measured here and "
                "never averaged with ours:", ""]
        out += _md_table(list(t.paper.columns), t.paper.astype(str).values.tolist(), 2) + [""]
    return "\n".join(out)


def _paper_caption(t: Table) -> str:
    """`RoBERTa-large` / `RoBERTa-large and Llama-3-8B`: whose numbers the paper block holds."""
    models = list(dict.fromkeys(str(m) for m in t.paper["Model"])) if t.paper is not None else []
    return " and ".join(models) or "The paper's"


def _tex(s: str) -> str:
    for a, b in (("\\", "\\textbackslash{}"), ("_", "\\_"), ("%", "\\%"), ("&", "\\&"), ("#", "\\#"),
                 ("—", "--"), ("−", "-")):
        s = s.replace(a, b)
    return s


def _tex_tabular(header: list[str], rows: list[list[str]], n_index: int) -> list[str]:
    spec = "l" * n_index + "r" * (len(header) - n_index)
    return [f"\\begin{{tabular}}{{{spec}}}", "\\toprule", " & ".join(header) + " \\\\", "\\midrule",
            *(" & ".join(r) + " \\\\" for r in rows), "\\bottomrule", "\\end{tabular}"]


def to_latex(t: Table) -> str:
    """LaTeX (booktabs; \\textbf best, \\underline second); the paper's numbers in a second tabular."""
    marks, names = t.marks(), [c.name for c in t.columns]
    lines = [f"% {t.title} -- generated by `prunepeft report` from run outputs", "\\begin{table}[t]",
             "\\centering", f"\\caption{{{_tex(t.title)}}}", f"\\label{{tab:{t.key}}}"]
    body = []
    for r in t.rows:
        cells = []
        for c in names:
            s, m = fmt(t.cell(r, c), tex=True), marks.get((r, c))
            cells.append(f"\\textbf{{{s}}}" if m == "best" else f"\\underline{{{s}}}" if m == "second" else s)
        body.append([_tex(x) for x in r] + cells)
    lines += _tex_tabular([_tex(h) for h in [*t.index, *names]], body, len(t.index))
    if t.paper is not None and not t.paper.empty:
        lines += ["", "\\medskip", f"{{\\small {_tex(_paper_caption(t))} numbers from the paper (arXiv 2506.07587), "
                  "not measured here}",
                  "", "\\medskip"]
        paper_rows = [[_tex(str(x)) for x in row] for row in t.paper.values.tolist()]
        lines += _tex_tabular([_tex(h) for h in t.paper.columns], paper_rows, 2)
    return "\n".join(lines + ["\\end{table}", ""])


def to_csv(t: Table) -> str:
    """Long CSV, measured values only: one line per (row, column) with mean, std, n, seeds, mark, delta."""
    marks, recs = t.marks(), []
    for r in t.rows:
        for col in t.columns:
            c, d = t.cell(r, col.name), t.deltas.get((r, col.name), Cell())
            recs.append({"table": t.key, **{k.lower().replace(" ", "_"): v for k, v in zip(t.index, r)},
                         "column": col.name, "mean": c.mean, "std": c.std, "n": c.n,
                         "seeds": ";".join(map(str, c.seeds)), "mark": marks.get((r, col.name), ""),
                         "delta_mean": d.mean, "delta_std": d.std, "delta_n": d.n})
    cols = ["table", *(k.lower().replace(" ", "_") for k in t.index), "column", "mean", "std", "n", "seeds",
            "mark", "delta_mean", "delta_std", "delta_n"]
    buf = io.StringIO()
    pd.DataFrame(recs, columns=cols).round(4).to_csv(buf, index=False, lineterminator="\n")
    return buf.getvalue()
