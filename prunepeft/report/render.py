"""A table model and its three renderings: markdown, LaTeX (booktabs) and CSV.

As in the paper's tables, the best value of a column is bold and the second best underlined
(markdown: `**best**`, `<u>second</u>`). Only measured values are ranked; the paper's number for a
row stands in its own column beside ours (`<column> paper`), with `<column> Δ` = ours − paper,
never ranked with or averaged into ours. The three renderings show the same numbers.
"""
from __future__ import annotations

import io
import math
from dataclasses import dataclass, field

import pandas as pd

from prunepeft.report.aggregate import Cell
from prunepeft.run.markdown import md_table  # noqa: F401 - also the report's (signal, headroom)

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
    labels: dict[Row, str] = field(default_factory=dict)  # a row's method label without its configuration
    paper: dict[tuple[Row, str], str] = field(default_factory=dict)  # the paper's printed number beside ours
    paper_columns: list[str] = field(default_factory=list)  # value columns followed by `paper` and `Δ`

    def cell(self, row: Row, col: str) -> Cell:
        return self.cells.get((row, col), Cell())

    def paper_delta(self, row: Row, col: str) -> tuple[float, int] | None:
        """(ours − paper, digits) on the displayed (rounded) mean, or None where either is missing."""
        c, printed = self.cell(row, col), self.paper.get((row, col))
        if c.missing or printed is None:
            return None
        digits = max(c.digits, len(printed.partition(".")[2]))
        return round(round(c.mean, c.digits) - float(printed), digits), digits

    def header(self) -> list[str]:
        """The value columns as rendered: each paired column followed by its paper and Δ columns."""
        out = []
        for col in self.columns:
            out += [col.name] + ([f"{col.name} paper", f"{col.name} Δ"] if col.name in self.paper_columns else [])
        return out

    def marks(self) -> dict[tuple[Row, str], str]:
        """{(row, column): "best" | "second"}, ranked on the displayed (rounded) means.

        Rows are ranked within their model (the first index column): comparing a 6-layer MiniLM
        with Llama-3-8B in one column says nothing. Ties share a mark; one value is never marked;
        a cell at chance (†) is never ranked: which of several runs that learned nothing is "best" is noise.
        """
        out: dict[tuple[Row, str], str] = {}
        for model in dict.fromkeys(r[0] for r in self.rows):
            rows = [r for r in self.rows if r[0] == model]
            for col in self.columns:
                vals = {r: round(c.mean, c.digits) for r in rows
                        if not (c := self.cell(r, col.name)).missing and not c.at_chance}
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
    """`71.0 ± 1.2 (n=3)`; one seed: `71.0 (n=1)`; at chance: `0.0 (n=1) †`; `show_std=False`: `71.0`;
    missing: `—`."""
    if cell.missing:
        return "--" if tex else MISSING
    num = f"{cell.mean:+.{cell.digits}f}" if signed else f"{cell.mean:.{cell.digits}f}"
    dagger = ("$^\\dagger$" if tex else " †") if cell.at_chance else ""
    if not cell.show_std:
        return num + dagger
    pm = " $\\pm$ " if tex else " ± "
    std = "" if math.isnan(cell.std) else f"{pm}{cell.std:.{cell.digits}f}"
    n = f" {{\\scriptsize ({cell.n})}}" if tex else f" (n={cell.n})"
    return f"{num}{std}{n}{dagger}"


def _md_table(header: list[str], rows: list[list[str]], n_index: int) -> list[str]:
    return md_table(header, rows, [":--"] * n_index + ["--:"] * (len(header) - n_index))


def _values(t: Table, r: Row, marks: dict, tex: bool = False) -> list[str]:
    """One row's rendered value cells (ours marked best/second; paper and Δ beside the paired ones)."""
    out = []
    for col in t.columns:
        s, m = fmt(t.cell(r, col.name), tex=tex), marks.get((r, col.name))
        if tex:
            out.append(f"\\textbf{{{s}}}" if m == "best" else f"\\underline{{{s}}}" if m == "second" else s)
        else:
            out.append(f"**{s}**" if m == "best" else f"<u>{s}</u>" if m == "second" else s)
        if col.name in t.paper_columns:
            delta = t.paper_delta(r, col.name)
            none = "--" if tex else MISSING
            out += [t.paper.get((r, col.name), none), none if delta is None else f"{delta[0]:+.{delta[1]}f}"]
    return out


def to_markdown(t: Table) -> str:
    """Markdown: the table (ours, the paper's number and Δ), paired differences, then the notes."""
    marks, names = t.marks(), [c.name for c in t.columns]
    out = [f"## {t.title}", ""]
    if not t.rows:
        out += ["No finished runs for this table.", ""]
    else:
        body = [[*r, *_values(t, r, marks)] for r in t.rows]
        out += _md_table([*t.index, *t.header()], body, len(t.index)) + [""]
        if t.legend:
            out += [t.legend, ""]
    delta_cols = [c for c in names if any((r, c) in t.deltas for r in t.rows)]
    delta_rows = [r for r in t.rows if any((r, c) in t.deltas for c in delta_cols)]
    if delta_rows:
        out += [f"Paired per-seed difference to {t.delta_to} (row − {t.delta_to}, same model, task and seed; "
                "mean ± sd over shared seeds, n = pairs):", ""]
        body = [[*r, *(fmt(t.deltas.get((r, c), Cell()), signed=True) for c in delta_cols)] for r in delta_rows]
        out += _md_table([*t.index, *delta_cols], body, len(t.index)) + [""]
    out += [f"- {n}" for n in t.notes] + ([""] if t.notes else [])
    return "\n".join(out)


def _tex(s: str) -> str:
    for a, b in (("\\", "\\textbackslash{}"), ("_", "\\_"), ("%", "\\%"), ("&", "\\&"), ("#", "\\#"),
                 ("—", "--"), ("−", "-"), ("±", "$\\pm$"), ("×", "$\\times$"), ("Δ", "$\\Delta$"), ("†", "$^\\dagger$")):
        s = s.replace(a, b)
    return s


def to_latex(t: Table) -> str:
    """LaTeX (booktabs; \\textbf best, \\underline second): the columns of the markdown, legend as a note.

    pandas `Styler.to_latex` writes the table environment; cells arrive escaped (`_tex`) and marked."""
    marks, header = t.marks(), [_tex(h) for h in [*t.index, *t.header()]]
    body = [[_tex(x) for x in r] + _values(t, r, marks, tex=True) for r in t.rows]  # values: LaTeX already
    styler = pd.DataFrame(body, columns=header, dtype=object).style.hide(axis="index")
    tex = styler.to_latex(environment="table", position="t", position_float="centering",
                          caption=_tex(t.title), label=f"tab:{t.key}", hrules=True,
                          column_format="l" * len(t.index) + "r" * (len(header) - len(t.index)))
    if t.legend:  # a note under the tabular, inside the float
        note = f"\\end{{tabular}}\n\n\\medskip\n{{\\small {_tex(_plain(t.legend))}}}\n"
        tex = tex.replace("\\end{tabular}\n", note, 1)
    return f"% {t.title} -- generated by `prunepeft report` from run outputs\n" + tex


def _plain(s: str) -> str:
    """The legend without markdown marks (LaTeX shows bold and underline itself)."""
    return s.replace("**best**", "bold = best").replace("<u>second</u>", "underlined = second")


def to_csv(t: Table) -> str:
    """Long CSV: one line per (row, column) with mean, sd (`std`), n, seeds, mark, at_chance, the paired delta to
    PrunePEFT, and the paper's number with Δ = ours − paper (empty where the paper has none)."""
    marks, recs = t.marks(), []
    for r in t.rows:
        for col in t.columns:
            c, d = t.cell(r, col.name), t.deltas.get((r, col.name), Cell())
            recs.append({"table": t.key, **{k.lower().replace(" ", "_"): v for k, v in zip(t.index, r)},
                         "column": col.name, "mean": c.mean, "std": c.std, "n": c.n,
                         "seeds": ";".join(map(str, c.seeds)), "mark": marks.get((r, col.name), ""),
                         "at_chance": c.at_chance,
                         "delta_mean": d.mean, "delta_std": d.std, "delta_n": d.n,
                         "paper": t.paper.get((r, col.name), ""),
                         "delta_paper": (t.paper_delta(r, col.name) or (math.nan,))[0]})
    cols = ["table", *(k.lower().replace(" ", "_") for k in t.index), "column", "mean", "std", "n", "seeds",
            "mark", "at_chance", "delta_mean", "delta_std", "delta_n", "paper", "delta_paper"]
    buf = io.StringIO()
    pd.DataFrame(recs, columns=cols).round(4).to_csv(buf, index=False, lineterminator="\n")
    return buf.getvalue()
