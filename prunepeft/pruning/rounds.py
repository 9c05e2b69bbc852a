"""The bookkeeping around one pruning round, kept out of `search()` so it reads like Algorithm 1.

- `choose_removals`: the round's k (the last allowed round removes down to B) and the removal;
- `remove_units`: deactivate the removed units (then, under granularity=rank, the rank stage);
- `record_warmup`: `warmup.json` and the log line of S_H;
- `record_round`: the `rounds.jsonl` row, the resumable state, the checkpoint, the log line and the
  debug crash hook;
- `fill_budget`: after the last removal, give back removed units that still fit under B.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Optional

from prunepeft.run import outputs
from prunepeft.config.typed import SearchSettings
from prunepeft.run.io import append_jsonl
from prunepeft.peft import count_parameters, parse_unit_key, unit_key
from prunepeft.run.progress import estimate_rounds, log_round, log_warmup
from prunepeft.pruning import arms, cost
from prunepeft.pruning.assign_rules import scores_are_tau
from prunepeft.pruning.checkpoint import supernet_tensors
from prunepeft.pruning.scoring import snapshot_to_json
from prunepeft.pruning.selection import select_round, select_top_k
from prunepeft.pruning.statistics import UnitId

log = logging.getLogger(__name__)


class SimulatedCrash(RuntimeError):
    """Raised by `debug.crash_after_round` to test resuming (never in normal runs)."""


def choose_removals(counts: Any, p: Mapping[UnitId, float], s: SearchSettings, round_index: int,
                    budget: int, arm_settings: Mapping[str, Any]) -> tuple[list[UnitId], bool]:
    """The round's removed units (descending p) and whether the search is now within B.

    `counts` is the supernet's accounting before the removal (`count_parameters`, taken once per
    round by `record_round` or `stages.resume`). The last allowed round (`search.max_rounds`)
    removes down to B: a run never ends above the budget. Under granularity=rank the unit rounds
    end at B / (1 − search.rank_ratio), above B, and the rank stage finishes (`remove_units`).
    `arm_settings`: each arm's settings (`pruning.setup.SearchSetup.arms`).
    """
    k = s.k if round_index < s.max_rounds else len(p)
    chosen = arms.ask(arm_settings, "choose_removals", p, k, counts, budget, s.seed + round_index)  # e.g. granularity=rank
    return chosen if chosen is not None else select_round(p, k, counts.per_unit, counts.peft, budget, s.seed + round_index)


def remove_units(supernet: Any, removed: list[UnitId], stats: Mapping[UnitId, Any], arm_settings: Mapping[str, Any],
                 budget: int, last: bool, seed: int, run: Any) -> list[UnitId]:
    """Deactivate the round's removed units; after the last round under granularity=rank, prune ranks
    to B too (units left with no rank count as removed). Returns every unit removed this round."""
    for uid in removed:
        supernet.deactivate(uid)
    more = arms.each(arm_settings, "after_removal", supernet, stats, budget, last, seed, run)
    return removed + [u for units in more for u in units]


@dataclass
class RoundOutcome:
    """Everything one round produced (the inputs of its `rounds.jsonl` row)."""

    index: int
    active_before: list[UnitId]
    removed: list[UnitId]
    last: bool
    snapshot: Mapping[str, Any]
    combined: Any
    fitted: Any
    stats: Mapping[UnitId, Any]
    started: float
    diagnostics: Optional[dict] = None


def record_round(run: Any, state: Any, ckpt: Any, supernet: Any, s: SearchSettings, budget: int,
                 outcome: RoundOutcome, probes: tuple = (None, None)) -> Any:
    """Log the finished round, advance and save the resumable state (checkpoint after the row).

    `probes` = (the search's observer (instruments), the masked_loss criterion's probe or None): their
    passes ran inside the round and are charged to their own cost phases (prunepeft.pruning.cost).

    Returns the accounting after the removal (`count_parameters`, the round's one count): the
    next round's loop test and `choose_removals` read it.
    """
    r, seed, k = outcome.index, s.seed, s.k
    left = count_parameters(supernet)
    fitted = outcome.fitted
    removed = [unit_key(u) for u in outcome.removed]
    row = {
        "round": r, "active_before": [unit_key(u) for u in outcome.active_before],
        "removed": removed, "last": outcome.last,
        "params_left": left.peft, "percent_left": left.percent, "budget": budget,
        "dev": fitted.last, "train_loss": fitted.history[-1]["train_loss"] if fitted.history else None,
        "statistics": {unit_key(u): s.summary() for u, s in outcome.stats.items()},
        "criteria": snapshot_to_json(outcome.snapshot), "combined": outcome.combined.to_json(),
        "picks": {c: [unit_key(u) for u in select_top_k(s.oriented, k, seed + r)] for c, s in outcome.snapshot.items()},
    }
    if outcome.diagnostics is not None:
        row["diagnostics"] = outcome.diagnostics
    append_jsonl(run.file(outputs.ROUNDS), row)
    state.rounds_done, state.removed = r, state.removed + removed
    state.examples += fitted.examples_seen
    state.wall_s += time.time() - outcome.started
    diag_s, diag_rows = probes[0].take_cost() if probes[0] is not None else (0.0, 0)
    cost.add(state, "round_diagnostics", diag_s, diag_rows)
    probe_s, probe_rows = probes[1].take_cost() if probes[1] is not None else (0.0, 0)
    cost.add(state, "round_probes", probe_s, probe_rows)
    cost.add(state, "rounds", time.time() - outcome.started - diag_s - probe_s, fitted.eval_examples)
    state.save(ckpt, supernet_tensors(supernet))
    p = outcome.combined.p
    # ≈N: this round plus the rounds the units left above B still need at k per round
    approx = r + estimate_rounds(left.peft, budget, len(outcome.active_before) - len(removed), s.k)
    log_round(r, approx, {unit_key(u): float(p[u]) for u in outcome.removed}, left.peft, budget, fitted.last,
              time.time() - outcome.started)
    if outcome.diagnostics is not None:
        log.info("round %d %s", r, _signal_note(outcome.diagnostics))
    if r == s.crash_after_round:
        raise SimulatedCrash(f"debug.crash_after_round={r}")
    return left


def record_warmup(run: Any, result: Any, k: int, fitted: Any, diagnostics: Optional[list],
                  learning: Optional[dict] = None) -> None:
    """Write warmup.json (τ, S_H, pick counts; per-snapshot train loss and the learned flag; per-snapshot
    diagnostics when measured) and log S_H, with one warning line when the supernet learned nothing."""
    run.write_json(outputs.WARMUP, {**result.to_json(), "k": k, "examples": fitted.examples_seen,
                                   **({"learning": learning} if learning else {}),
                                   **({"diagnostics": diagnostics} if diagnostics else {})})
    log_warmup({key: c for key, c in result.to_json()["assignment"].items()}, result.margins(),
               None if scores_are_tau(result.assign_rule) else result.assign_rule)
    if learning and not learning["learned"]:
        log.warning("the warm-up learned nothing (train loss %s, chance %.3f): its assignment S_H ranks the "
                    "initialisation, not the task; train it longer (search.warmup.epochs), on more rows "
                    "(search.warmup.subset) or at a higher rate (search.warmup.lr)",
                    " -> ".join(f"{x:.3f}" for x in learning["train_loss"]), learning["chance_loss"])


def _signal_note(diagnostics: Optional[dict]) -> str:
    if not diagnostics:
        return ""
    corr, null = diagnostics.get("spearman_combined"), diagnostics.get("spearman_null")
    pct = (diagnostics.get("decision") or {}).get("percentile")
    parts = [f"signal: Spearman(p, -importance) {_fmt(corr)} (random {_fmt(null)})"]
    if pct is not None:
        parts.append(f"removed set at percentile {100 * pct:.0f} of random sets (50 = chance)")
    if diagnostics.get("learned") is False:
        parts.append("LEARNED NOTHING (train loss ~ ln(classes))")
    return ", ".join(parts)


def _fmt(value: Optional[float]) -> str:
    return "n/a" if value is None else f"{value:+.2f}"


def fill_budget(supernet: Any, removed_keys: Sequence[str], budget: int) -> list[UnitId]:
    """Re-activate removed units, last removed first, while the active total stays ≤ B.

    A unit that does not fit is skipped and the next (earlier removed) one is tried, so the found
    configuration uses as much of B as whole units allow. Returns the restored units.
    """
    restored: list[UnitId] = []
    total = count_parameters(supernet).peft
    for key in reversed(list(removed_keys)):
        uid = parse_unit_key(key)
        size = sum(int(p.numel()) for p in supernet.unit_parameters(uid).values())
        if total + size <= budget:
            supernet.activate(uid)
            total += size
            restored.append(uid)
    return restored
