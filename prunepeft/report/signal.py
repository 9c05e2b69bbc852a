"""The search signal across runs: what the pruning decisions knew (`search.diagnostics`), and how arms compare.

Runs are grouped into *arms* by their directory name without the `-s<seed>` suffix (the layout of
`benchmarks/results/<study>/<arm>-s<seed>/` and of `hydra.run.dir=.../<arm>-s<seed>`).

- `signal_rows`: per arm, Fisher-z means with 95 % intervals over seeds × rounds of the Spearman
  correlation between each ranking and −importance (the combined p, the `random` null, each
  criterion), the split-half reliability of the ground truth, the decision-level percentile, the
  rounds that learned nothing, and the retrained metrics;
- `comparison_rows`: paired differences of the primary metric to a reference arm (hybrid) over
  common seeds, with the 95 % half-width and the minimum detectable effect (80 % power);
- `build_signal`: both as markdown + CSV, and a figure of the correlations.
"""
from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any, Optional

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from scipy.stats import t as student_t  # noqa: E402

from prunepeft.run import outputs  # noqa: E402
from prunepeft.run.io import atomic_write_text, read_jsonl  # noqa: E402
from prunepeft.run.markdown import md_table  # noqa: E402

HELDOUT_SPLIT = "train_heldout"


def fisher_mean(values: list[Optional[float]]) -> Optional[tuple[float, float, float]]:
    """Mean correlation through Fisher's z with a 95 % interval (t quantile): (mean, low, high)."""
    zs = [math.atanh(max(-0.999999, min(0.999999, v))) for v in values if v is not None]
    if len(zs) < 2:
        return None
    m, sd = statistics.mean(zs), statistics.stdev(zs)
    half = student_t.ppf(0.975, len(zs) - 1) * sd / math.sqrt(len(zs))
    return math.tanh(m), math.tanh(m - half), math.tanh(m + half)


def mean_ci(values: list[float]) -> Optional[tuple[float, float, int]]:
    """(mean, 95 % half-width by the t quantile, n), or None below two values."""
    values = [v for v in values if v is not None]
    if len(values) < 2:
        return None
    half = student_t.ppf(0.975, len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values))
    return statistics.mean(values), half, len(values)


def mean_sd(values: list[float]) -> Optional[tuple[float, float, int]]:
    """(mean, sample standard deviation, n), or None below two values."""
    values = [v for v in values if v is not None]
    if len(values) < 2:
        return None
    return statistics.mean(values), statistics.stdev(values), len(values)


def bootstrap_ci(values: list[float], resamples: int = 10_000, seed: int = 0) -> Optional[tuple[float, float, float, int]]:
    """Seed-bootstrap 95 % percentile interval of the mean (paired: pass the per-seed differences):
    (mean, low, high, n), or None below two values. Resamples seeds with replacement; seeded."""
    import numpy as np
    from scipy.stats import bootstrap

    values = [v for v in values if v is not None]
    if len(values) < 2:
        return None
    res = bootstrap((np.asarray(values, dtype=float),), np.mean, n_resamples=resamples, confidence_level=0.95,
                    method="percentile", random_state=np.random.default_rng(seed))
    return statistics.mean(values), float(res.confidence_interval.low), float(res.confidence_interval.high), len(values)


def mde(half_width: float) -> float:
    """Minimum detectable effect at 80 % power for a paired design with this 95 % half-width."""
    return half_width * (1.96 + 0.84) / 1.96


def arm_of(run: str) -> tuple[str, Optional[int]]:
    """`"settings/keep-s101"` -> ("settings/keep", 101); a name without `-s<seed>` is its own arm."""
    head, sep, seed = run.rpartition("-s")
    return (head, int(seed)) if sep and seed.isdigit() else (run, None)


def _metric(row: Any, split: str) -> Optional[float]:
    value = (row.metrics or {}).get(split, {}).get(row.metric) if isinstance(row.metrics, dict) else None
    return None if value is None else float(value)


def load_diagnostics(path: str | Path) -> list[dict]:
    """The per-round diagnostics of one run (empty when they were off)."""
    return [r["diagnostics"] for r in read_jsonl(Path(path) / outputs.ROUNDS) if r.get("diagnostics")]


def signal_rows(df: pd.DataFrame) -> pd.DataFrame:
    """One row per arm with diagnostics (see the module doc); empty when no run measured its rounds."""
    rows = []
    for arm, group in _arms(df):
        diags = [d for path in group["path"] for d in load_diagnostics(path)]
        if not diags:
            continue
        comb = [d.get("spearman_combined") for d in diags]
        null = [d.get("spearman_null") for d in diags]
        both = [(c, n) for c, n in zip(comb, null) if c is not None and n is not None]
        row: dict[str, Any] = {
            "arm": arm, "seeds": len(group), "rounds": len(diags),
            "combined": fisher_mean(comb), "null": fisher_mean(null),
            "corrected": statistics.mean(c - n for c, n in both) if both else None,
            "reliability": fisher_mean([d.get("reliability") for d in diags]),
            "decision_pct": mean_ci([(d.get("decision") or {}).get("percentile") for d in diags]),
            "learned_nothing": sum(1 for d in diags if d.get("learned") is False),
            "dev": mean_ci([_metric(r, r.split) for r in group.itertuples() if r.split]),
            "heldout": mean_ci([_metric(r, HELDOUT_SPLIT) for r in group.itertuples()]),
        }
        for name in sorted({c for d in diags for c in d.get("spearman", {})}):
            row[f"criterion:{name}"] = fisher_mean([d["spearman"].get(name) for d in diags])
        rows.append(row)
    out = pd.DataFrame(rows)
    return out.sort_values("corrected", ascending=False, key=lambda s: s.fillna(-9)) if len(out) else out


def comparison_rows(df: pd.DataFrame, reference: str = "hybrid") -> pd.DataFrame:
    """Per study folder: each arm's primary metric and its paired difference to `reference` (points)."""
    rows = []
    arms = dict(_arms(df))
    for arm, group in arms.items():
        folder = arm.rpartition("/")[0]
        ref = arms.get(f"{folder}/{reference}" if folder else reference)
        row: dict[str, Any] = {"arm": arm, "n": len(group),
                               "params_pct": statistics.mean(float(p) for p in group["params_percent"].dropna())
                               if group["params_percent"].notna().any() else None}
        for split, label in (("primary", "dev"), (HELDOUT_SPLIT, "heldout")):
            values = {r.seed_: _metric(r, r.split if split == "primary" else split) for r in group.itertuples()}
            row[label] = mean_sd([100 * v for v in values.values() if v is not None])
            if ref is not None and arm != (f"{folder}/{reference}" if folder else reference):
                base = {r.seed_: _metric(r, r.split if split == "primary" else split) for r in ref.itertuples()}
                diffs = [100 * (values[s] - base[s]) for s in sorted(set(values) & set(base))
                         if values[s] is not None and base[s] is not None]
                row[f"delta_{label}"] = mean_ci(diffs)
        rows.append(row)
    return pd.DataFrame(rows)


def _arms(df: pd.DataFrame):
    """(arm, finished runs of that arm) pairs, with the seed from the directory name in `seed_`."""
    done = df[df["complete"]].copy()
    if done.empty:
        return []
    parsed = done["run"].map(arm_of)
    done["arm_"] = parsed.map(lambda x: x[0])
    done["seed_"] = [s if s is not None else seed for (_, s), seed in zip(parsed, done["seed"])]
    return list(done.groupby("arm_", sort=True))


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
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
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
