"""What a search costs, by phase (Table 4 in wall-clock; docs/method.md#cost).

The paper's Table 4 puts the search at 0.30 × the retrain. A ratio is only honest when it counts
every pass, so each phase that runs the model is timed where it runs and kept in the resumable
state (`SearchState.phases`), and the examples are counted twice: trained (forward + backward)
and forward-only (dev evaluations, masked probe passes):

- `setup`: loading the backbone and data, building the supernet (every invocation pays it);
- `warmup_train`: the warm-up's training and scoring, without its probes;
- `warmup_probes`: masked passes at the warm-up snapshots (`assign=agreement`, `masked_loss`, diagnostics);
- `rounds`: the pruning rounds' training, scoring and dev evaluation;
- `round_probes`: masked passes the rounds' criteria make (the `masked_loss` criterion's probe);
- `round_diagnostics`: the per-round ground-truth probe (`search.diagnostics`);
- `retrain`: building the found configuration, training it, saving it.

search = warmup_train + warmup_probes + rounds + round_probes + round_diagnostics; `setup` is paid by a plain
training run too, so it is reported apart and counted in neither side of the ratio.
"""
from __future__ import annotations

import time
from typing import Any, Optional

SEARCH_PHASES = ("warmup_train", "warmup_probes", "rounds", "round_probes", "round_diagnostics")
PHASES = ("setup", *SEARCH_PHASES, "retrain")


def add(state: Any, phase: str, seconds: float, forward_rows: int = 0) -> None:
    """Charge `seconds` (and `forward_rows` forward-only examples) to `phase` of the resumable state."""
    if phase not in PHASES:
        raise ValueError(f"unknown cost phase {phase!r}; one of {', '.join(PHASES)}")
    state.phases[phase] = round(state.phases.get(phase, 0.0) + max(0.0, seconds), 3)
    if phase != "retrain":
        state.forward_examples += int(forward_rows)


def ratio(numerator: float, denominator: float) -> Optional[float]:
    """numerator / denominator, None when there is nothing to divide by (a search-only run)."""
    return round(numerator / denominator, 4) if denominator > 0 else None


def summary(state: Any, run_started: float, retrained: Any, train_size: int) -> dict[str, Any]:
    """summary.json's `cost`: seconds per phase, search/retrain, and examples trained vs forward-only.

    `unaccounted_s` is this invocation's wall-clock that no phase claimed (writing files, the
    summary itself); it stays small when every pass is counted (tests/test_cost.py holds it ≤ 5 %).
    """
    phases = {p: round(state.phases.get(p, 0.0), 3) for p in PHASES}
    search_s = round(sum(phases[p] for p in SEARCH_PHASES), 3)
    invocation_s = time.time() - run_started
    charged_now = sum(phases.values()) - getattr(state, "charged_before", 0.0)
    unaccounted = round(invocation_s - charged_now, 3)
    return {
        "phases_s": phases,
        "search_s": search_s,
        "retrain_s": phases["retrain"],
        "search_over_retrain": ratio(search_s, phases["retrain"]),
        "total_s": round(sum(phases.values()) + unaccounted, 3),
        "unaccounted_s": unaccounted,
        "examples": {
            "search_trained": int(state.examples),
            "search_forward_only": int(state.forward_examples),
            "retrain_trained": int(retrained.examples_seen),
            "retrain_forward_only": int(retrained.eval_examples),
        },
        # passes over the training set D (the paper's Table 4 unit), trained examples only
        "search_epoch_equivalents": round(state.examples / max(1, train_size), 4),
    }


def log_line(cost: dict[str, Any]) -> str:
    """One line a person can read: where the search's time went, and search/retrain."""
    p, ex = cost["phases_s"], cost["examples"]
    r = cost["search_over_retrain"]
    return (f"cost: search {cost['search_s']:.0f} s (warm-up {p['warmup_train']:.0f} s + probes {p['warmup_probes']:.0f} s, "
            f"rounds {p['rounds']:.0f} s + probes {p.get('round_probes', 0.0):.0f} s + diagnostics {p['round_diagnostics']:.0f} s), retrain {cost['retrain_s']:.0f} s, "
            f"search/retrain {'n/a' if r is None else f'{r:.2f}x'}; setup {p['setup']:.0f} s; examples trained "
            f"{ex['search_trained']:,} + {ex['retrain_trained']:,}, forward-only {ex['search_forward_only']:,} + "
            f"{ex['retrain_forward_only']:,} (search + retrain)")
