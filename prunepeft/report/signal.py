"""The search signal rendered: `prunepeft.analysis.signal`'s rows as markdown + CSV and a figure of the
correlations (`build_signal`), with the minimum detectable effect beside every paired interval."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from prunepeft.analysis.signal import comparison_rows, signal_rows  # noqa: E402
from prunepeft.analysis.stats import mde  # noqa: E402
from prunepeft.report.figures import save_figure  # noqa: E402
from prunepeft.run.io import atomic_write_text  # noqa: E402
from prunepeft.run.markdown import md_table  # noqa: E402


# ------------------------------------------------------------------------------------ rendering
def _corr(x: Optional[tuple]) -> str:
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x[0]:+.2f} [{x[1]:+.2f}, {x[2]:+.2f}]"


def _ci(x: Optional[tuple], scale: float = 1.0, digits: int = 1, signed: bool = False) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    sign = "+" if signed else ""
    return f"{scale * x[0]:{sign}.{digits}f} ± {scale * x[1]:.{digits}f} (n={x[2]})"


def signal_markdown(rows: pd.DataFrame) -> str:
    """The signal table and the per-criterion table."""
    if rows.empty:
        return ""
    lines = ["## Search signal (ground truth: loss rise when a unit is masked alone on held-out rows)", "",
             "Spearman(ranking, −importance), Fisher mean [95 %] over seeds × rounds; corrected = combined − "
             "random null; decision pct = share of random equal-type removal sets that hurt less than the "
             "search's (50 = chance, lower = better).", ""]
    head = ["arm", "seeds", "rounds", "combined p", "null (random)", "corrected", "reliability", "decision pct",
            "learned nothing", "dev", "held-out"]
    body = [[r.arm, r.seeds, r.rounds, _corr(r.combined), _corr(r.null),
             "—" if r.corrected is None or pd.isna(r.corrected) else f"{r.corrected:+.2f}", _corr(r.reliability),
             _ci(r.decision_pct, 100, 0), r.learned_nothing, _ci(r.dev, 100), _ci(r.heldout, 100)]
            for r in rows.itertuples()]
    lines += md_table(head, body)
    crits = [c for c in rows.columns if c.startswith("criterion:")]
    lines += ["", *md_table(["arm", *(c.split(":", 1)[1] for c in crits)],
                            [[r["arm"], *(_corr(r.get(c)) for c in crits)] for r in rows.to_dict("records")])]
    return "\n".join(lines)


def comparison_markdown(rows: pd.DataFrame) -> str:
    """Arms side by side with paired differences to hybrid and the MDE beside every interval."""
    if rows.empty or not any(c.startswith("delta_") for c in rows.columns):
        return ""
    lines = ["## Arms compared (primary metric in points: mean ± sd over seeds; Δ = paired difference to hybrid over "
             "common seeds, mean ± 95 % half-width; MDE = minimum detectable Δ at 80 % power)", ""]
    body = []
    for r in rows.to_dict("records"):
        dh = r.get("delta_heldout")
        dh = None if isinstance(dh, float) else dh
        pct = "—" if r.get("params_pct") is None else f"{r['params_pct']:.3f}"
        body.append([r["arm"], r["n"], _ci(r.get("dev")), _ci(r.get("heldout")),
                     _ci(r.get("delta_dev"), digits=2, signed=True), _ci(dh, digits=2, signed=True),
                     "—" if dh is None else f"{mde(dh[1]):.2f}", pct])
    lines += md_table(["arm", "n", "dev", "held-out", "Δ dev", "Δ held-out", "MDE held-out (80 %)", "PEFT %"], body)
    return "\n".join(lines)


def signal_figure(rows: pd.DataFrame, path: Path) -> Optional[Path]:
    """Per arm: the combined p, the null and each criterion's correlation with 95 % intervals."""
    if rows.empty:
        return None
    series = ["combined", "null"] + [c for c in rows.columns if c.startswith("criterion:")]
    fig, ax = plt.subplots(figsize=(min(16.0, max(6.0, 1.3 * len(rows) + 2)), 4.5))
    width = 0.8 / len(series)
    for j, name in enumerate(series):
        xs, ys, lo, hi = [], [], [], []
        for i, r in enumerate(rows.to_dict("records")):
            v = r.get(name)
            if isinstance(v, tuple):
                xs.append(i + (j - len(series) / 2) * width)
                ys.append(v[0])
                lo.append(v[0] - v[1])
                hi.append(v[2] - v[0])
        ax.errorbar(xs, ys, yerr=[lo, hi], fmt="o" if name in ("combined", "null") else ".", capsize=2,
                    label=name.split(":")[-1], color="black" if name == "combined" else "grey" if name == "null" else None)
    ax.axhline(0.0, color="grey", lw=0.8, ls="--")
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels(list(rows["arm"]), rotation=30, ha="right", fontsize=8)
    ax.set_ylim(-1, 1)
    ax.set_ylabel("Spearman(ranking, −importance)")
    ax.set_title("What each round's ranking knows (95 % intervals)")
    ax.legend(fontsize=7, ncol=4, loc="lower left")
    fig.tight_layout()
    save_figure(fig, [path], dpi=120)
    return path


def build_signal(df: pd.DataFrame, out: Path) -> str:
    """Write signal.md, signal.csv, comparison.csv and figures/signal.png into `out`; return the markdown."""
    sig, comp = signal_rows(df), comparison_rows(df)
    parts = [p for p in (signal_markdown(sig), comparison_markdown(comp)) if p]
    if not parts:
        return ""
    markdown = "\n\n".join(parts)
    atomic_write_text(out / "signal.md", markdown + "\n")
    if len(sig):
        atomic_write_text(out / "signal.csv", sig.to_csv(index=False, lineterminator="\n"))
        signal_figure(sig, out / "figures" / "signal.png")
    if len(comp):
        atomic_write_text(out / "comparison.csv", comp.to_csv(index=False, lineterminator="\n"))
    return markdown
