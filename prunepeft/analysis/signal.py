"""The search signal across runs, computed: what the pruning decisions knew (`search.diagnostics`), and
how arms compare. `prunepeft.report.signal` renders these rows as markdown, CSV and a figure.

Runs are grouped into *arms* by their directory name without the `-s<seed>` suffix (the layout of
`benchmarks/results/<study>/<arm>-s<seed>/` and of `hydra.run.dir=.../<arm>-s<seed>`).

- `signal_rows`: per arm, Fisher-z means with 95 % intervals over seeds × rounds of the Spearman
  correlation between each ranking and −importance (the combined p, the `random` null, each
  criterion), the split-half reliability of the ground truth, the decision-level percentile, the
  rounds that learned nothing, and the retrained metrics;
- `comparison_rows`: paired differences of the primary metric to a reference arm (hybrid) over
  common seeds, with the 95 % half-width (the minimum detectable effect is `stats.mde` of it).
"""
from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any, Optional

import pandas as pd

from prunepeft.analysis.stats import fisher_mean, mean_ci, mean_sd
from prunepeft.run import outputs
from prunepeft.run.io import read_jsonl

HELDOUT_SPLIT = "train_heldout"


def arm_of(run: str) -> tuple[str, Optional[int]]:
    """`"settings/keep-s101"` -> ("settings/keep", 101); a name without `-s<seed>` is its own arm."""
    head, sep, seed = run.rpartition("-s")
    return (head, int(seed)) if sep and seed.isdigit() else (run, None)


def metric_of(row: Any, split: str) -> Optional[float]:
    """A run row's value of its primary metric on `split` (None when absent)."""
    value = (row.metrics or {}).get(split, {}).get(row.metric) if isinstance(row.metrics, dict) else None
    return None if value is None else float(value)


def load_diagnostics(path: str | Path) -> list[dict]:
    """The per-round diagnostics of one run (empty when they were off)."""
    return [r["diagnostics"] for r in read_jsonl(Path(path) / outputs.ROUNDS) if r.get("diagnostics")]


def signal_rows(df: pd.DataFrame) -> pd.DataFrame:
    """One row per arm with diagnostics (see the module doc); empty when no run measured its rounds."""
    rows = []
    for arm, group in arms(df):
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
            "dev": mean_ci([metric_of(r, r.split) for r in group.itertuples() if r.split]),
            "heldout": mean_ci([metric_of(r, HELDOUT_SPLIT) for r in group.itertuples()]),
        }
        for name in sorted({c for d in diags for c in d.get("spearman", {})}):
            row[f"criterion:{name}"] = fisher_mean([d["spearman"].get(name) for d in diags])
        rows.append(row)
    out = pd.DataFrame(rows)
    return out.sort_values("corrected", ascending=False, key=lambda s: s.fillna(-9)) if len(out) else out


def comparison_rows(df: pd.DataFrame, reference: str = "hybrid") -> pd.DataFrame:
    """Per study folder: each arm's primary metric and its paired difference to `reference` (points)."""
    rows = []
    groups = dict(arms(df))
    for arm, group in groups.items():
        folder = arm.rpartition("/")[0]
        ref = groups.get(f"{folder}/{reference}" if folder else reference)
        row: dict[str, Any] = {"arm": arm, "n": len(group),
                               "params_pct": statistics.mean(float(p) for p in group["params_percent"].dropna())
                               if group["params_percent"].notna().any() else None}
        for split, label in (("primary", "dev"), (HELDOUT_SPLIT, "heldout")):
            values = {r.seed_: metric_of(r, r.split if split == "primary" else split) for r in group.itertuples()}
            row[label] = mean_sd([100 * v for v in values.values() if v is not None])
            if ref is not None and arm != (f"{folder}/{reference}" if folder else reference):
                base = {r.seed_: metric_of(r, r.split if split == "primary" else split) for r in ref.itertuples()}
                diffs = [100 * (values[s] - base[s]) for s in sorted(set(values) & set(base))
                         if values[s] is not None and base[s] is not None]
                row[f"delta_{label}"] = mean_ci(diffs)
        rows.append(row)
    return pd.DataFrame(rows)


def arms(df: pd.DataFrame):
    """(arm, finished runs of that arm) pairs, with the seed from the directory name in `seed_`."""
    done = df[df["complete"]].copy()
    if done.empty:
        return []
    parsed = done["run"].map(arm_of)
    done["arm_"] = parsed.map(lambda x: x[0])
    done["seed_"] = [s if s is not None else seed for (_, s), seed in zip(parsed, done["seed"])]
    return list(done.groupby("arm_", sort=True))


__all__ = ["HELDOUT_SPLIT", "arm_of", "arms", "comparison_rows", "load_diagnostics", "metric_of", "signal_rows"]
