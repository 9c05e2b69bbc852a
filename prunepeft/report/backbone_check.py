"""One backbone per report: refuse tables that would mix pruned and unpruned backbones (issue 14, Deliver 4).

A run that pruned its backbone early (`backbone_prune.enabled=true`, prunepeft.arms.backbone_stage;
or `baseline method=found` retraining such a run's configuration) records it in `summary.json` as
`backbone: {heads, ffn, params_before, params_after, ...}`; a run on the unpruned backbone has no
`backbone` entry. Its metric, its `params.percent` (a share of the PRUNED base) and its cost are not
comparable with an unpruned run's (docs/method.md, "Early backbone pruning"), so the report refuses
to put both, or two different pruning settings, in its tables and names the runs of each kind.
Report each kind from its own directory (`runs=`).
"""
from __future__ import annotations

from typing import Any

import pandas as pd

from prunepeft.errors import UserError

UNPRUNED = "unpruned"
SHOWN = 5  # runs named per kind in the message


def backbone_label(summary: dict[str, Any]) -> str:
    """`unpruned`, or `pruned (heads 0.333, ffn 0.333)` from summary.json's `backbone` entry."""
    record = summary.get("backbone") if isinstance(summary, dict) else None
    if not isinstance(record, dict):
        return UNPRUNED
    parts = [f"{key} {float(record[key]):.3g}" for key in ("heads", "ffn") if record.get(key) is not None]
    return f"pruned ({', '.join(parts)})" if parts else "pruned"


def check_one_backbone(runs: pd.DataFrame) -> None:
    """Raise a UserError when the runs (those a table would use) hold more than one backbone kind.

    Args:
        runs: the report's run records (report.collect), with a `backbone` column from
            `backbone_label`; a missing column (records of an older collector) counts as unpruned.
    """
    if runs.empty:
        return
    kinds = runs["backbone"].fillna(UNPRUNED) if "backbone" in runs else pd.Series(UNPRUNED, index=runs.index)
    if kinds.nunique() <= 1:
        return
    lines = []
    for kind in sorted(kinds.unique(), key=lambda k: (k != UNPRUNED, k)):
        names = sorted(runs.loc[kinds == kind, "run"].astype(str))
        more = f" and {len(names) - SHOWN} more" if len(names) > SHOWN else ""
        lines.append(f"  {kind} backbone ({len(names)} runs): {', '.join(names[:SHOWN])}{more}")
    raise UserError("these runs would mix backbones in one table: a run that pruned its backbone "
                    "(summary.json `backbone`, backbone_prune.enabled=true) is not comparable with one that "
                    "did not, nor with another pruning setting:\n" + "\n".join(lines) +
                    "\nput each kind under its own directory and report it on its own (runs=<dir>)")
