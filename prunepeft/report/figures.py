"""Figures 1 and 3 of arXiv 2506.07587 and a per-run search plot, from run outputs only.

- Figure 1: per criterion, the share of its top-k picks that fall on each (layer, unit type): the
  paper's evidence that criteria prefer different module types and depths (why Eq. (1) mixes them).
  Pick counts come from `warmup.json` (`pick_counts`) and `rounds.jsonl` (`picks`).
- Figure 3: pruning frequency of each (layer, unit type) across the found configurations
  (`found_config.json`) of PrunePEFT runs, one panel per task plus all tasks together.
- Per run: active PEFT parameters (% of the base model) and the dev metric over the pruning rounds.
Every figure is written as PNG and PDF (matplotlib's headless Agg backend).
"""
from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: report jobs run on clusters and CI without a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from prunepeft.io import read_jsonl  # noqa: E402
from prunepeft.report.collect import TASK_ORDER, task_name  # noqa: E402

CRITERIA_ORDER = ("weight", "zeros", "threshold", "activation", "taylor", "gradient", "random")
TYPE_ORDER = ("lora", "dora", "adapter", "houlsby")


@dataclass(frozen=True)
class FigureFile:
    """A written figure: its PNG and PDF and how many panels (axes other than colorbars) it has."""

    name: str
    png: Path
    pdf: Path
    panels: int


def _save(fig: plt.Figure, out_dir: Path, name: str) -> FigureFile:
    out_dir.mkdir(parents=True, exist_ok=True)
    panels = sum(1 for ax in fig.axes if ax.get_label() != "<colorbar>")
    png, pdf = out_dir / f"{name}.png", out_dir / f"{name}.pdf"
    fig.savefig(png, dpi=100, bbox_inches="tight")
    fig.savefig(pdf, bbox_inches="tight")
    plt.close(fig)
    return FigureFile(name, png, pdf, panels)


def _unit(key: str) -> tuple[int, str]:
    layer, kind = key.split(":", 1)
    return int(layer), kind


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def pick_counts(run: Path) -> dict[str, Counter]:
    """Per criterion, how often each unit was in its top-k: warm-up snapshots plus search rounds."""
    counts: dict[str, Counter] = {}
    for crit, units in (_read_json(run / "warmup.json").get("pick_counts") or {}).items():
        counts.setdefault(crit, Counter()).update({k: int(v) for k, v in units.items()})
    for rec in read_jsonl(run / "rounds.jsonl"):
        for crit, units in (rec.get("picks") or {}).items():
            counts.setdefault(crit, Counter()).update(units)
    return counts


def _grid(runs: pd.DataFrame, seen: set[tuple[int, str]]) -> tuple[int, list[str]]:
    """(number of layers, unit types) for a model: from the runs' records, else from the units seen."""
    layers = pd.to_numeric(runs.get("num_layers"), errors="coerce").max() if "num_layers" in runs else math.nan
    n = int(layers) if layers == layers else max((l for l, _ in seen), default=-1) + 1
    types = {t for s in runs.get("search_space", pd.Series(dtype=object)).dropna() for t in str(s).split(",") if t}
    types |= {t for _, t in seen}
    return n, [t for t in TYPE_ORDER if t in types] + sorted(types - set(TYPE_ORDER))


def _grid_axes(n: int, ncols: int = 3, w: float = 4.2, h: float = 2.2) -> tuple[plt.Figure, list[plt.Axes]]:
    ncols = min(ncols, n)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(w * ncols, h * nrows + 0.6), squeeze=False, layout="constrained")
    flat = list(axes.flat)
    for ax in flat[n:]:
        fig.delaxes(ax)
    return fig, flat[:n]


def _searches(runs: pd.DataFrame) -> pd.DataFrame:
    return runs[(runs["command"] == "search") & runs["complete"]] if not runs.empty else runs


def figure1(runs: pd.DataFrame, out_dir: Path) -> list[FigureFile]:
    """Figure 1, one file per model: a heat map per criterion of its pick shares (types × layers)."""
    files = []
    for model, group in _searches(runs).groupby("model"):
        counts: dict[str, Counter] = {}
        for path in group["path"]:
            for crit, c in pick_counts(Path(path)).items():
                counts.setdefault(crit, Counter()).update(c)
        counts = {k: v for k, v in counts.items() if sum(v.values())}
        if not counts:
            continue
        crits = [c for c in CRITERIA_ORDER if c in counts] + sorted(set(counts) - set(CRITERIA_ORDER))
        n_layers, types = _grid(group, {_unit(k) for c in counts.values() for k in c})
        fig, axes = _grid_axes(len(crits))
        shares = {}
        for crit in crits:
            m = np.zeros((len(types), n_layers))
            for key, v in counts[crit].items():
                layer, kind = _unit(key)
                m[types.index(kind), layer] += v
            shares[crit] = m / m.sum()
        vmax = max(m.max() for m in shares.values())
        for ax, crit in zip(axes, crits):
            im = ax.imshow(shares[crit], vmin=0, vmax=vmax, cmap="viridis", aspect="auto")
            ax.set_title(f"{crit} ({sum(counts[crit].values())} picks)", fontsize=9)
            ax.set_xticks(range(n_layers), [str(i) for i in range(n_layers)], fontsize=7)
            ax.set_yticks(range(len(types)), types, fontsize=8)
            ax.set_xlabel("layer", fontsize=8)
        fig.colorbar(im, ax=axes, label="share of the criterion's picks")
        fig.suptitle(f"Figure 1 — where each criterion prunes ({model}, {len(group)} runs)", fontsize=10)
        files.append(_save(fig, out_dir, f"figure1_{model}"))
    return files


def _kept(path: Path) -> set[tuple[int, str]] | None:
    """Units of a run's found configuration, or None without found_config.json.

    Accepts the flat `units` list ("3:lora", ...) and `layers` as {"3": [{"type": ...}]} or as
    [{"layer": 3, "units": [{"type": ...}]}].
    """
    found = _read_json(path / "found_config.json")
    if isinstance(found.get("units"), list):
        return {_unit(k) for k in found["units"]}
    layers = found.get("layers")
    if isinstance(layers, dict):
        return {(int(l), u["type"]) for l, units in layers.items() for u in units}
    if isinstance(layers, list):
        return {(int(e["layer"]), u["type"]) for e in layers for u in e.get("units", [])}
    return None


def figure3(runs: pd.DataFrame, out_dir: Path) -> list[FigureFile]:
    """Figure 3, one file per model: pruning frequency per (layer, type) over PrunePEFT's found configs."""
    files = []
    s = _searches(runs)
    s = s[s["label"].str.startswith("PrunePEFT")] if not s.empty else s
    for model, group in s.groupby("model"):
        found = {p: k for p in group["path"] if (k := _kept(Path(p))) is not None}
        if not found:
            continue
        group = group[group["path"].isin(list(found))]
        n_layers, types = _grid(group, {u for k in found.values() for u in k})
        tasks = sorted(group["task"].unique(), key=lambda t: TASK_ORDER.index(t) if t in TASK_ORDER else 99)
        panels = [(task_name(t), group[group["task"] == t]) for t in tasks]
        panels += [("All tasks", group)] if len(tasks) > 1 else []
        fig, axes = _grid_axes(len(panels), ncols=2, w=5.0, h=2.6)
        width = 0.8 / len(types)
        for ax, (title, g) in zip(axes, panels):
            for i, kind in enumerate(types):
                freq = [np.mean([(l, kind) not in found[p] for p in g["path"]]) for l in range(n_layers)]
                ax.bar(np.arange(n_layers) + (i - (len(types) - 1) / 2) * width, freq, width, label=kind)
            ax.set_title(f"{title} ({len(g)} runs)", fontsize=9)
            ax.set_xticks(range(n_layers))
            ax.set_ylim(0, 1.05)
            ax.set_xlabel("layer", fontsize=8)
            ax.set_ylabel("pruned fraction", fontsize=8)
        fig.legend(*axes[0].get_legend_handles_labels(), loc="outside upper right", fontsize=7, ncols=len(types))
        fig.suptitle(f"Figure 3 — pruning frequency of the found configurations ({model})", fontsize=10)
        files.append(_save(fig, out_dir, f"figure3_{model}"))
    return files


def _dev_value(dev: dict, metric: str | None) -> float:
    """The round's dev metric: `{"accuracy": v}` or `{split: {"accuracy": v}}`."""
    if metric in dev and not isinstance(dev[metric], dict):
        return float(dev[metric])
    for v in dev.values():
        if isinstance(v, dict):
            return _dev_value(v, metric)
    return float(next(iter(dev.values()))) if dev else math.nan


def round_plots(runs: pd.DataFrame, out_dir: Path) -> list[FigureFile]:
    """One file per finished search run: active PEFT params % and dev metric after each round."""
    files = []
    for row in _searches(runs).itertuples():
        rounds = read_jsonl(Path(row.path) / "rounds.jsonl")
        if not rounds:
            continue
        x = [r.get("round", i + 1) for i, r in enumerate(rounds)]
        metric = row.metric if isinstance(row.metric, str) else None
        fig, (a, b) = plt.subplots(1, 2, figsize=(8.4, 2.8), layout="constrained")
        a.plot(x, [r.get("percent_left", math.nan) for r in rounds], marker="o")
        if row.params_percent == row.params_percent and row.params_percent is not None:
            a.axhline(row.params_percent, ls="--", c="grey", lw=1, label="found config")
            a.legend(fontsize=7)
        a.set(xlabel="round", ylabel="active PEFT params (% of base)")
        b.plot(x, [_dev_value(r.get("dev") or {}, metric) for r in rounds], marker="o", c="tab:orange")
        b.set(xlabel="round", ylabel=f"dev {metric or 'metric'}")
        for ax in (a, b):
            ax.set_xticks(x)
        fig.suptitle(f"{row.run}", fontsize=9)
        files.append(_save(fig, out_dir, "rounds_" + (row.run.strip(".").replace("/", "__") or "run")))
    return files


def build_figures(runs: pd.DataFrame, out_dir: str | Path) -> list[FigureFile]:
    """All figures the runs allow (figures with no data are skipped, never drawn empty)."""
    out_dir = Path(out_dir)
    return figure1(runs, out_dir) + figure3(runs, out_dir) + round_plots(runs, out_dir / "rounds")
