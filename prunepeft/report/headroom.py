"""Headroom rendered: `prunepeft.analysis.headroom`'s rows as headroom.md, headroom.csv and
figures/headroom.png (the envelope as a box and strip per seed, the markers on it); `build_headroom`
writes them and returns the markdown."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Optional

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from prunepeft.analysis.headroom import (collect_headroom, marker_names, marker_rows, partial_seeds,  # noqa: E402
                                         seed_rows, unit_rows)
from prunepeft.report.figures import save_figure  # noqa: E402
from prunepeft.run.io import atomic_write_text  # noqa: E402
from prunepeft.run.markdown import md_table  # noqa: E402


def _fmt(v: Any, spec: str = ".1f") -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    return format(v, spec)


def _ci(d: Optional[tuple]) -> str:
    if d is None:
        return "—"
    if d[2] < 2 or math.isnan(d[1]):
        return f"{d[0]:+.2f} (n=1)"
    return f"{d[0]:+.2f} ± {d[1]:.2f} (n={d[2]})"


def headroom_markdown(folder: str, study: dict[str, Any]) -> str:
    seeds, markers, units = seed_rows(study), marker_rows(study), unit_rows(study)
    names = marker_names(study["markers"])
    title = f"## Headroom{f' ({folder})' if folder else ''}"
    lines = [title, "",
             "Random configurations at the hybrid's parameter count (see the study's draws), retrained with the same "
             "recipe: the envelope. Held-out accuracy (points); a marker's percentile is its mid-rank among "
             "its seed's envelope (100 = above every draw).", ""]
    body = []
    for r in seeds.to_dict("records"):
        params = (f"{r['params_min'] / 1e3:.1f}–{r['params_max'] / 1e3:.1f}" if not pd.isna(r["params_min"]) else "—")
        cells = [str(r["seed"]), str(r["n"]), params] + [_fmt(r[c], ".2f") for c in ("best", "q75", "median", "q25", "worst")]
        body.append(cells + [f"{_fmt(r[m], '.2f')} ({_fmt(r[f'{m}_pct'], '.0f')})" for m in names])
    lines += md_table(["seed", "N", "params (k)", "best", "q75", "median", "q25", "worst",
                       *(f"{m} (pct)" for m in names)], body)
    body = []
    for r in markers.to_dict("records"):
        pct = "—" if r["percentile"] is None or pd.isna(r["percentile"]) else f"{r['percentile']:.0f} ({r['pct_min']:.0f}–{r['pct_max']:.0f})"
        body.append([r["arm"], r["n"], pct, f"{r['value']:.2f}", _ci(r["delta_best"]), _ci(r["delta_median"])])
    lines += ["", *md_table(["arm", "seeds", "mean percentile (range)", "mean", "Δ to envelope best (paired, 95 %)",
                             "Δ to envelope median (paired, 95 %)"], body)]
    partial = partial_seeds(study)
    if partial:
        full = max(len(d) for d in study["envelope"].values())
        lines += ["", f"Not pooled across seeds (an envelope still short of the largest, N = {full}): "
                      + ", ".join(f"seed {s} ({n} draws)" for s, n in partial.items()) + "."]
    if not units.empty:
        lines += ["", "Which units the best configurations share (top quarter of each seed's envelope, against "
                  "how often the draws held the unit):", ""]
        lines += md_table(["unit", "share of draws", "share of top-quarter draws", "lift"],
                          [[r["unit"], f"{r['drawn']:.2f}", f"{r['top']:.2f}", f"{r['lift']:+.2f}"]
                           for r in units.to_dict("records")])
    return "\n".join(lines)


def headroom_figure(studies: dict[str, dict[str, Any]], path: Path) -> Optional[Path]:
    """Per (folder, seed): the envelope as a box with its draws as a strip, the markers on it."""
    columns = [(folder, seed) for folder, st in sorted(studies.items()) for seed in sorted(st["envelope"])]
    if not columns:
        return None
    fig, ax = plt.subplots(figsize=(min(18.0, max(7.0, 1.2 * len(columns) + 4.5)), 4.5))
    data = [[v for v, _, _ in studies[f]["envelope"][s]] for f, s in columns]
    ax.boxplot(data, positions=range(len(columns)), widths=0.5, showfliers=False)
    rng = np.random.default_rng(0)
    for i, values in enumerate(data):
        ax.scatter(i + rng.uniform(-0.12, 0.12, len(values)), values, s=10, color="grey", alpha=0.7,
                   label="envelope draw" if i == 0 else None, zorder=2)
    styles = ["D", "*", "s", "^", "v", "P", "X"]
    order: list[str] = []
    for i, (f, s) in enumerate(columns):
        for m in marker_names(studies[f]["markers"]):
            got = studies[f]["markers"][m].get(s)
            if got is None:
                continue
            first = m not in order
            if first:
                order.append(m)
            j = order.index(m)
            # each arm a little further right: arms that found the same configuration stay visible side by side
            ax.scatter([i + 0.3 + 0.07 * j], [got[0]], marker=styles[j % len(styles)], s=45, zorder=3, color=f"C{j}",
                       label=m if first else None)
    ax.set_xticks(range(len(columns)))
    ax.set_xticklabels([f"{f + ' ' if f else ''}s{s}" for f, s in columns], rotation=30 if len(columns) > 6 else 0,
                       ha="right" if len(columns) > 6 else "center", fontsize=8)
    ax.set_ylabel("held-out accuracy (points)")
    ax.set_title("Headroom: random configurations at equal parameters (box + draws), arms marked", fontsize=9)
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles))
    # outside the axes: inside, it hid the lowest draws
    ax.legend(unique.values(), unique.keys(), fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    save_figure(fig, [path], dpi=120)
    return path


def build_headroom(df: pd.DataFrame, out: Path) -> str:
    """Write headroom.md, headroom.csv and figures/headroom.png into `out`; return the markdown ("" without envelope runs)."""
    studies = collect_headroom(df)
    if not studies:
        return ""
    parts, csv = [], []
    for folder, study in sorted(studies.items()):
        parts.append(headroom_markdown(folder, study))
        rows = seed_rows(study)
        rows.insert(0, "folder", folder)
        csv.append(rows)
    figure = headroom_figure(studies, Path(out) / "figures" / "headroom.png")
    if figure is not None:
        parts.append(f"![headroom]({figure.relative_to(out).as_posix()})")
    markdown = "\n\n".join(parts)
    atomic_write_text(Path(out) / "headroom.md", markdown + "\n")
    atomic_write_text(Path(out) / "headroom.csv", pd.concat(csv).to_csv(index=False, lineterminator="\n"))
    return markdown


__all__ = ["build_headroom", "headroom_figure", "headroom_markdown"]
