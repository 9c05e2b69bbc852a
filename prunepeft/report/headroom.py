"""Headroom (issue 26): is there a configuration better than uniform PEFT at the same parameters, and does
any search find it?

A study folder holds an *envelope*: per seed, N random configurations at the parameter count of that
seed's hybrid found configuration (± one unit), each retrained with the same recipe, as runs
`env<j>-s<seed>` (`benchmarks/headroom.py` draws and runs them). Every other arm of the same folder
(`hybrid`, `uniform_lora_eqparams`, `masked_loss`, ...) is a *marker*: where it falls in its seed's
envelope is the headroom it leaves.

- per seed: the envelope's size, parameters, best / upper quartile / median / lower quartile / worst,
  and each marker's value and percentile in the envelope (mid-rank: 100 × (#below + ½ #tied) / N);
- per marker, across seeds: the mean percentile, and the paired differences to the envelope's best and
  median (mean ± 95 % half-width, t quantile), in points; the same for the envelope's best over median;
- per unit (layer:type): how often it is in the top quarter of each seed's envelope against how often
  it was drawn at all (which layers and types the best configurations share).

Values are the held-out split's primary metric (`train_heldout`, the study's 5k rows), in points.
`build_headroom` writes headroom.md, headroom.csv and figures/headroom.png (the envelope as a box and
strip per seed, the markers on it) and returns the markdown.
"""
from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Optional

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from prunepeft.run import outputs  # noqa: E402
from prunepeft.run.io import atomic_write_text, read_json  # noqa: E402
from prunepeft.run.markdown import md_table  # noqa: E402
from prunepeft.report.signal import HELDOUT_SPLIT, _arms, _metric, mean_ci  # noqa: E402

ENVELOPE = re.compile(r"env\d+")
# Markers first in this order, then the others by name.
MARKER_ORDER = ("hybrid", "masked_loss", "uniform_lora_eqparams", "uniform_adapter_eqparams")


def percentile_in(value: float, envelope: list[float]) -> float:
    """Mid-rank percentile of `value` among `envelope`: 100 × (#below + ½ #tied) / N."""
    below = sum(1 for v in envelope if v < value)
    tied = sum(1 for v in envelope if v == value)
    return 100.0 * (below + 0.5 * tied) / len(envelope)


def _units(path: str) -> list[str]:
    file = Path(path) / outputs.FOUND_CONFIG
    try:
        return list(read_json(file).get("units") or []) if file.exists() else []
    except (OSError, ValueError):
        return []


def collect_headroom(df: pd.DataFrame, split: str = HELDOUT_SPLIT) -> dict[str, dict[str, Any]]:
    """{folder: {"envelope": {seed: [(value, units, params)]}, "markers": {arm: {seed: (value, params)}}}},
    values in points; only folders with envelope runs, only seeds with a finished envelope run."""
    out: dict[str, dict[str, Any]] = {}
    for arm, group in _arms(df):
        folder, _, name = arm.rpartition("/")
        study = out.setdefault(folder, {"envelope": {}, "markers": {}})
        for r in group.itertuples():
            value = _metric(r, split)
            if value is None:
                continue
            params = None if pd.isna(r.params_peft) else int(r.params_peft)
            if ENVELOPE.fullmatch(name):
                study["envelope"].setdefault(int(r.seed_), []).append((100.0 * value, _units(r.path), params))
            else:
                study["markers"].setdefault(name, {})[int(r.seed_)] = (100.0 * value, params)
    return {f: s for f, s in out.items() if s["envelope"]}


def _marker_names(markers: dict) -> list[str]:
    return [m for m in MARKER_ORDER if m in markers] + sorted(m for m in markers if m not in MARKER_ORDER)


def seed_rows(study: dict[str, Any]) -> pd.DataFrame:
    """One row per seed: the envelope's distribution and each marker's value and percentile."""
    rows = []
    for seed, draws in sorted(study["envelope"].items()):
        values = np.array([v for v, _, _ in draws], dtype=float)
        params = [p for _, _, p in draws if p is not None]
        row: dict[str, Any] = {
            "seed": seed, "n": len(values),
            "params_min": min(params) if params else None, "params_median": float(np.median(params)) if params else None,
            "params_max": max(params) if params else None,
            "best": float(values.max()), "q75": float(np.quantile(values, 0.75)), "median": float(np.median(values)),
            "q25": float(np.quantile(values, 0.25)), "worst": float(values.min()),
        }
        for m in _marker_names(study["markers"]):
            got = study["markers"][m].get(seed)
            row[f"{m}"] = None if got is None else got[0]
            row[f"{m}_params"] = None if got is None else got[1]
            row[f"{m}_pct"] = None if got is None else percentile_in(got[0], list(values))
        rows.append(row)
    return pd.DataFrame(rows)


def marker_rows(study: dict[str, Any]) -> pd.DataFrame:
    """Per marker across seeds: mean percentile, paired Δ to the envelope's best and median (mean, ±95 %, n)."""
    per_seed = seed_rows(study)
    rows = []
    for m in _marker_names(study["markers"]):
        sub = per_seed[per_seed[m].notna()] if m in per_seed else per_seed.iloc[:0]
        if sub.empty:
            continue
        rows.append({"arm": m, "n": len(sub), "percentile": float(sub[f"{m}_pct"].mean()),
                     "pct_min": float(sub[f"{m}_pct"].min()), "pct_max": float(sub[f"{m}_pct"].max()),
                     "value": float(sub[m].mean()),
                     "delta_best": mean_ci(list(sub[m] - sub["best"])) or _single(sub[m] - sub["best"]),
                     "delta_median": mean_ci(list(sub[m] - sub["median"])) or _single(sub[m] - sub["median"])})
    rows.append({"arm": "envelope best", "n": len(per_seed), "percentile": None, "pct_min": None, "pct_max": None,
                 "value": float(per_seed["best"].mean()), "delta_best": None,
                 "delta_median": mean_ci(list(per_seed["best"] - per_seed["median"]))
                 or _single(per_seed["best"] - per_seed["median"])})
    return pd.DataFrame(rows)


def _single(diffs: pd.Series) -> Optional[tuple[float, float, int]]:
    """One seed: (the difference, nan half-width, 1); none: None."""
    return (float(diffs.iloc[0]), math.nan, 1) if len(diffs) == 1 else None


def unit_rows(study: dict[str, Any], top: float = 0.25) -> pd.DataFrame:
    """Per unit (layer:type): the share of all draws holding it, the share of the draws in the top `top`
    fraction of their seed's envelope holding it, and the difference (lift)."""
    drawn: dict[str, int] = {}
    best: dict[str, int] = {}
    n_all = n_top = 0
    for seed, draws in study["envelope"].items():
        ranked = sorted(draws, key=lambda d: -d[0])
        k = max(1, math.ceil(top * len(ranked)))
        for i, (_, units, _) in enumerate(ranked):
            n_all += 1
            n_top += i < k
            for u in units:
                drawn[u] = drawn.get(u, 0) + 1
                if i < k:
                    best[u] = best.get(u, 0) + 1
    rows = []
    for u in sorted(drawn, key=lambda x: (int(x.split(":")[0]), x.split(":")[1])):
        share_all, share_top = drawn[u] / n_all, best.get(u, 0) / n_top
        rows.append({"unit": u, "drawn": share_all, "top": share_top, "lift": share_top - share_all})
    return pd.DataFrame(rows)


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
    names = _marker_names(study["markers"])
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
    fig, ax = plt.subplots(figsize=(min(16.0, max(5.0, 1.2 * len(columns) + 2.5)), 4.5))
    data = [[v for v, _, _ in studies[f]["envelope"][s]] for f, s in columns]
    ax.boxplot(data, positions=range(len(columns)), widths=0.5, showfliers=False)
    rng = np.random.default_rng(0)
    for i, values in enumerate(data):
        ax.scatter(i + rng.uniform(-0.12, 0.12, len(values)), values, s=10, color="grey", alpha=0.7,
                   label="envelope draw" if i == 0 else None, zorder=2)
    styles = ["D", "*", "s", "^", "v", "P", "X"]
    order: list[str] = []
    for i, (f, s) in enumerate(columns):
        for m in _marker_names(studies[f]["markers"]):
            got = studies[f]["markers"][m].get(s)
            if got is None:
                continue
            first = m not in order
            if first:
                order.append(m)
            j = order.index(m)
            ax.scatter([i + 0.3], [got[0]], marker=styles[j % len(styles)], s=45, zorder=3, color=f"C{j}",
                       label=m if first else None)
    ax.set_xticks(range(len(columns)))
    ax.set_xticklabels([f"{f + ' ' if f else ''}s{s}" for f, s in columns], rotation=30 if len(columns) > 6 else 0,
                       ha="right" if len(columns) > 6 else "center", fontsize=8)
    ax.set_ylabel("held-out accuracy (points)")
    ax.set_title("Headroom: random configurations at equal parameters (box + draws), arms marked", fontsize=9)
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles))
    ax.legend(unique.values(), unique.keys(), fontsize=7, loc="lower left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
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


__all__ = ["build_headroom", "collect_headroom", "headroom_figure", "headroom_markdown", "marker_rows",
           "percentile_in", "seed_rows", "unit_rows"]
