"""Figures 1 and 3 of arXiv 2506.07587 and a per-run search plot, from run outputs only.

- Figure 1: per criterion, the share of its top-k picks that fall on each (layer, unit type): the
  paper's evidence that criteria prefer different module types and depths (why Eq. (1) mixes them).
  Pick counts come from `warmup.json` (`pick_counts`) and `rounds.jsonl` (`picks`).
- Figure 3: pruning frequency of each (layer, unit type) across the found configurations
  (`found_config.json`) of PrunePEFT runs, one panel per task plus all tasks together; a type counts
  only in the runs whose search space had it (pruned / had it as a candidate).
- Per search run: active PEFT parameters (% of the base model; round 0 = the supernet, the budget
  line) and the dev metric over the pruning rounds; the found configuration (layers × unit types:
  kept, or the round that removed it); the warm-up tendencies τ with the assignment S_H marked.
- Per finished run: training curves (loss per step, dev metric per epoch), one colour per phase.
Every figure is written as PNG and PDF (matplotlib's headless Agg backend). What each figure reads
from the run files (pick counts, found units, the round series) is computed in `report/figure_data.py`.
"""
from __future__ import annotations

import io
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: report jobs run on clusters and CI without a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from prunepeft.run import outputs  # noqa: E402
from prunepeft.run.io import atomic_write_bytes, read_jsonl  # noqa: E402
from prunepeft.report.collect import TASK_ORDER, task_name  # noqa: E402
from prunepeft.report.figure_data import (  # noqa: E402
    _candidates,
    _dev_value,
    _first_seen,
    _grid,
    _kept,
    _read_json,
    _searches,
    _space,
    _unit,
    pick_counts,
    pruned_fraction,
    round_series,
)


@dataclass(frozen=True)
class FigureFile:
    """A written figure: its PNG and PDF and how many panels (axes other than colorbars) it has."""

    name: str
    png: Path
    pdf: Path
    panels: int


def save_figure(fig: plt.Figure, paths: list[Path], dpi: int = 100, tight: bool = False) -> None:
    """Write `fig` to each path (the format from its suffix), then close it: pyplot keeps every open
    figure alive, and a report draws dozens. The one figure writer of `report/`: rendered in memory and
    written atomically like every run file, so a report killed mid-write leaves no torn figure, only a
    temp file the next report removes."""
    try:
        for path in paths:
            buf = io.BytesIO()
            fig.savefig(buf, format=path.suffix.lstrip("."), dpi=dpi, bbox_inches="tight" if tight else None)
            atomic_write_bytes(path, buf.getvalue())
    finally:
        plt.close(fig)


def _save(fig: plt.Figure, out_dir: Path, name: str) -> FigureFile:
    panels = sum(1 for ax in fig.axes if ax.get_label() != "<colorbar>")
    png, pdf = out_dir / f"{name}.png", out_dir / f"{name}.pdf"
    save_figure(fig, [png, pdf], dpi=100, tight=True)
    return FigureFile(name, png, pdf, panels)


def _grid_axes(n: int, ncols: int = 3, w: float = 4.2, h: float = 2.2) -> tuple[plt.Figure, list[plt.Axes]]:
    ncols = min(ncols, n)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(w * ncols, h * nrows + 0.6), squeeze=False, layout="constrained")
    flat = list(axes.flat)
    for ax in flat[n:]:
        fig.delaxes(ax)
    return fig, flat[:n]


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
        crits = list(counts)
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
        spaces = group["search_space"] if "search_space" in group else pd.Series(None, index=group.index)
        cands = {p: _candidates(Path(p), s) for p, s in zip(group["path"], spaces)}
        n_layers, types = _grid(group, {u for k in found.values() for u in k})
        types = [t for t in types if any(t in c for c in cands.values())]
        tasks = sorted(group["task"].unique(), key=lambda t: TASK_ORDER.index(t) if t in TASK_ORDER else 99)
        panels = [(task_name(t), group[group["task"] == t]) for t in tasks]
        panels += [("All tasks", group)] if len(tasks) > 1 else []
        fig, axes = _grid_axes(len(panels), ncols=2, w=5.0, h=2.6)
        width = 0.8 / len(types)
        for ax, (title, g) in zip(axes, panels):
            for i, kind in enumerate(types):
                # only runs that had `kind` as a candidate count (a type outside a run's search space
                # is not "pruned" there); a panel whose runs never had it gets no bar
                freq = [pruned_fraction(found, cands, list(g["path"]), l, kind) for l in range(n_layers)]
                ax.bar(np.arange(n_layers) + (i - (len(types) - 1) / 2) * width, freq, width, label=kind)
            ax.set_title(f"{title} ({len(g)} runs)", fontsize=9)
            ax.set_xticks(range(n_layers))
            ax.set_ylim(0, 1.05)
            ax.set_xlabel("layer", fontsize=8)
            ax.set_ylabel("pruned fraction\n(runs with the type)", fontsize=8)
        # Below the panels: "outside upper right" shares the title's row and covered it with one panel.
        fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", fontsize=7, ncols=len(types),
                   title="unit type", title_fontsize=7)
        fig.suptitle(f"Figure 3 — pruning frequency of the found configurations ({model})", fontsize=10)
        files.append(_save(fig, out_dir, f"figure3_{model}"))
    return files


def _metric_range(metric: str | None) -> tuple[float, float]:
    """A fixed y range, so that a 2-example change never looks like a steep rise."""
    return (-1.0, 1.0) if metric in ("mcc", "pearson", "spearman", "matthews_correlation") else (0.0, 1.0)


def round_plots(runs: pd.DataFrame, out_dir: Path) -> list[FigureFile]:
    """One file per finished search run: active PEFT params % per round (round 0 = the supernet,
    with the budget line) and the dev metric of the configuration each round trained."""
    files = []
    for row in _searches(runs).itertuples():
        path = Path(row.path)
        rounds = read_jsonl(path / outputs.ROUNDS)
        if not rounds:
            continue
        metric = row.metric if isinstance(row.metric, str) else None
        x, pct, budget = round_series(path, rounds)
        fig, (a, b) = plt.subplots(1, 2, figsize=(8.8, 3.0), layout="constrained")
        a.plot(x, pct, marker="o", label="after the round's removal")
        if budget is not None:
            a.axhline(budget, ls="--", c="tab:red", lw=1, label=f"budget B ({budget:.2f}%)")
        a.set_ylim(0, max(v for v in [*pct, budget or 0] if v == v) * 1.1 or 1)
        a.set(xlabel="round (0 = supernet before pruning)", ylabel="active PEFT params (% of base)")
        a.legend(fontsize=7)
        # Round r trains (and evaluates) the configuration left by round r-1, then removes units.
        dev = [_dev_value(r.get("dev") or {}, metric) for r in rounds]
        b.plot(x[:-1], dev, marker="o", c="tab:orange", label="after 1 round of training")
        final = row.value if isinstance(row.value, float) and row.value == row.value else None
        if final is not None:
            b.scatter([x[-1]], [final], marker="*", s=120, c="tab:green", zorder=3, label="found config, retrained")
        b.set_ylim(*_metric_range(metric))
        b.set(xlabel="configuration after round", ylabel=f"dev {metric or 'metric'}")
        b.legend(fontsize=7, loc="lower right")
        for ax in (a, b):
            ax.set_xticks(x)
        fig.suptitle(f"{row.run}: pruning rounds", fontsize=9)
        files.append(_save(fig, out_dir, "rounds_" + _slug(row.run)))
    return files


def _slug(run: str) -> str:
    return run.strip(".").replace("/", "__") or "run"


def found_config_plots(runs: pd.DataFrame, out_dir: Path) -> list[FigureFile]:
    """Per search run: layers × unit types, each cell kept (with its params) or the round that removed it."""
    files = []
    for row in _searches(runs).itertuples():
        path = Path(row.path)
        kept = _kept(path)
        if kept is None:
            continue
        removed_in = {_unit(k): int(r.get("round", i + 1))
                      for i, r in enumerate(read_jsonl(path / outputs.ROUNDS)) for k in r.get("removed", [])}
        found = _read_json(path / outputs.FOUND_CONFIG)
        n_layers = int(found.get("num_layers") or max((l for l, _ in kept | set(removed_in)), default=-1) + 1)
        types = _first_seen(_space(found.get("search_space")), sorted({t for _, t in kept | set(removed_in)}))
        n_rounds = max(removed_in.values(), default=1)
        params = {(int(e["layer"]), u["type"]): u.get("params") for e in found.get("layers", [])
                  if isinstance(e, dict) for u in e.get("units", [])}
        fig, ax = plt.subplots(figsize=(1.0 + 0.75 * n_layers, 0.9 + 0.55 * len(types)), layout="constrained")
        cmap = plt.get_cmap("Greys")
        for j, kind in enumerate(types):
            for layer in range(n_layers):
                uid = (layer, kind)
                if uid in kept:
                    color, text = "tab:green", "kept" + (f"\n{params[uid]:,}" if params.get(uid) else "")
                elif uid in removed_in:
                    color, text = cmap(0.25 + 0.5 * removed_in[uid] / n_rounds), f"r{removed_in[uid]}"
                else:
                    color, text = "white", "-"
                ax.add_patch(plt.Rectangle((layer - 0.5, j - 0.5), 1, 1, facecolor=color, edgecolor="white", lw=2))
                ax.text(layer, j, text, ha="center", va="center", fontsize=7, color="white" if uid in kept else "black")
        ax.set_xlim(-0.5, n_layers - 0.5)
        ax.set_ylim(len(types) - 0.5, -0.5)
        ax.set_xticks(range(n_layers))
        ax.set_yticks(range(len(types)), types)
        ax.set_xlabel("layer")
        pct = found.get("params", {}).get("percent_of_base") if isinstance(found.get("params"), dict) else None
        extra = f", {pct:.2f}% of base" if isinstance(pct, (int, float)) else ""
        ax.set_title(f"{row.run}: found configuration (green = kept{extra}; rN = removed in round N)", fontsize=8)
        files.append(_save(fig, out_dir, "found_" + _slug(row.run)))
    return files


def warmup_plots(runs: pd.DataFrame, out_dir: Path) -> list[FigureFile]:
    """Per search run: the warm-up tendencies τ (criterion × partition key) with the assignment S_H boxed."""
    files = []
    for row in _searches(runs).itertuples():
        warm = _read_json(Path(row.path) / outputs.WARMUP)
        tau = warm.get("tendencies") or warm.get("tendency") or {}
        if not tau:
            continue
        crits = list(tau)
        keys = _first_seen(*(tau[c] for c in crits))
        order = _first_seen(_space(getattr(row, "search_space", None)), sorted({k.partition(":")[2] for k in keys}))
        keys = sorted(keys, key=lambda k: (k.partition(":")[0], order.index(k.partition(":")[2])))
        m = np.array([[tau[c].get(k, np.nan) for k in keys] for c in crits], dtype=float)
        fig, ax = plt.subplots(figsize=(1.6 + 0.8 * len(keys), 1.0 + 0.42 * len(crits)), layout="constrained")
        im = ax.imshow(m, cmap="viridis", vmin=0, vmax=1, aspect="auto")
        for i, c in enumerate(crits):
            for j, k in enumerate(keys):
                if m[i, j] == m[i, j]:
                    ax.text(j, i, f"{m[i, j]:.2f}", ha="center", va="center", fontsize=7,
                            color="black" if m[i, j] > 0.6 else "white")
        assignment = warm.get("assignment") or {}
        for j, k in enumerate(keys):
            if assignment.get(k) in crits:
                i = crits.index(assignment[k])
                ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="red", lw=2.2))
        bounds = (warm.get("partition") or {}).get("boundaries")
        ax.set_xticks(range(len(keys)), keys, rotation=45, ha="right", fontsize=7)
        ax.set_yticks(range(len(crits)), crits, fontsize=8)
        ax.set_xlabel("partition key (block:type)" + (f"; blocks start at layers 0, {', '.join(map(str, bounds))}"
                                                      if bounds else ""), fontsize=8)
        fig.colorbar(im, ax=ax, label="tendency τ (mean ρ)")
        ax.set_title(f"{row.run}: warm-up tendencies; red box = S_H (chosen criterion)", fontsize=8)
        files.append(_save(fig, out_dir, "warmup_" + _slug(row.run)))
    return files


def curve_plots(runs: pd.DataFrame, out_dir: Path) -> list[FigureFile]:
    """Per finished run: training loss per step and the dev metric per epoch, one colour per phase."""
    files = []
    done = runs[runs["complete"]] if not runs.empty else runs
    for row in done.itertuples():
        events = read_jsonl(Path(row.path) / outputs.EVENTS)
        steps = [e for e in events if e.get("kind") == "step" and e.get("loss") is not None]
        if not steps:
            continue
        metric = row.metric if isinstance(row.metric, str) else None
        phases = list(dict.fromkeys(e.get("phase", "train") for e in events))
        fig, (a, b) = plt.subplots(1, 2, figsize=(9.0, 3.0), layout="constrained")
        offset = 0
        colors = plt.get_cmap("tab10")
        for i, phase in enumerate(phases):
            ps = [e for e in steps if e.get("phase", "train") == phase]
            evals = [e for e in events if e.get("kind") == "eval" and e.get("phase", "train") == phase]
            if ps:
                xs = [offset + int(e.get("step", k + 1)) for k, e in enumerate(ps)]
                a.plot(xs, [e["loss"] for e in ps], lw=1, c=colors(i % 10), label=phase)
                a.axvline(offset, c="lightgrey", lw=0.6)
            vals = [(offset + int(e.get("step", 0)), _dev_value(e.get("metrics") or {}, metric)) for e in evals
                    if e.get("metrics")]
            if vals:
                b.plot(*zip(*vals), marker="o", ms=3, c=colors(i % 10), label=phase)
            offset = max([offset, *(offset + int(e.get("step", 0)) for e in ps)])
        a.set(xlabel="optimizer step (phases one after another)", ylabel="train loss")
        b.set(xlabel="optimizer step", ylabel=f"dev {metric or 'metric'} per epoch")
        b.set_ylim(*_metric_range(metric))
        a.legend(fontsize=6, ncols=2)
        if b.lines:
            b.legend(fontsize=6, ncols=2)
        fig.suptitle(f"{row.run}: training curves per phase", fontsize=9)
        files.append(_save(fig, out_dir, "curves_" + _slug(row.run)))
    return files


def build_figures(runs: pd.DataFrame, out_dir: str | Path) -> list[FigureFile]:
    """All figures the runs allow (figures with no data are skipped, never drawn empty)."""
    out_dir = Path(out_dir)
    runs_dir = out_dir / "runs"
    return (figure1(runs, out_dir) + figure3(runs, out_dir) + round_plots(runs, out_dir / "rounds")
            + found_config_plots(runs, runs_dir) + warmup_plots(runs, runs_dir) + curve_plots(runs, runs_dir))
