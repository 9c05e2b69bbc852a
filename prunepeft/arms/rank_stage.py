"""Rank-level pruning (`search.granularity=rank`): fill the budget B to within one rank.

Whole units are coarse (a MiniLM LoRA unit is 24,576 parameters, an adapter 49,600), so a unit-level
search lands well under B. Light-PEFT (Gu et al. 2024) prunes at two granularities; we keep our
iterative unit rounds and add its fine one (docs/method.md, "Rank-level pruning"):

1. The last unit round removes only the prefix of its removal order that keeps the total ABOVE B
   (`select_round_for_ranks`). With `search.rank_ratio` ρ > 0 (Light-PEFT's rank ratio, 0.5 in
   `strategy=light_peft`) it stops earlier: at the first total <= B / (1 − ρ), still above B, so
   the rank stage removes about ρ of the survivors' parameters.
2. The rank stage then removes single ranks (a row of LoRA's A with its column of B; one adapter
   bottleneck dimension: a down row, its bias and an up column) across all active units, lowest
   score first (exact ties by a seeded permutation), until the total is <= B. A site that loses
   its last rank leaves with its fixed part (DoRA magnitude, adapter up-bias); a unit whose sites
   are all empty is removed like a pruned unit (returned, so the search records it).

Score (Light-PEFT's first-order Taylor, per optimizer step t, before clipping):

    s_i(t) = |Σ_j A_ij·∂L/∂A_ij| / d_in + |Σ_k B_ki·∂L/∂B_ki| / d_out

averaged over the second half of the last round's steps (at LoRA's standard init B = 0 makes the
A-term 0 early on). Under data parallelism the gradients are already averaged: nothing is reduced
again. Ranks are masked during the search (`Branch.rank_mask`, counted out by the accounting);
found_config.json records per-site sizes and the retrain builds units of exactly those sizes.

Cost of one rank: LoRA/DoRA d_in + d_out per site, an adapter dimension 2h + 1. The greedy order
is by score alone (never by score/cost), so the last removal overshoots B by less than one rank,
with one exception handled: a site's last rank takes the site's fixed part along (DoRA's d_out,
the adapter up-bias h), and when that fixed part alone would cross B the rank is deferred (the next
rank in score order goes instead) so the gap stays under one rank. Only when nothing else is left
do the deferred ranks go, in score order.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from prunepeft.run import outputs
from prunepeft.errors import check_choice
from prunepeft.peft import count_parameters, parse_unit_key, unit_key
from prunepeft.peft.weights import HEAD_PREFIX, trained_tensors
from prunepeft.pruning.selection import select_for_budget, select_top_k
from prunepeft.pruning.statistics import UnitId
from prunepeft.train.callbacks import Callback

log = logging.getLogger(__name__)

GRANULARITIES = ("unit", "rank")
RANK_PREFIX = "rank::"  # checkpoint keys of the rank masks: "rank::<layer>:<type>.<site>"
RANK_FILE = outputs.RANK_STAGE


@dataclass(frozen=True)
class RankSettings:
    """`search.granularity` and `search.rank_ratio` ρ, typed once by the arm (`RankStageArm.configure`)."""

    granularity: str  # unit | rank
    rank_ratio: float = 0.0  # null = 0 (checked with the Light-PEFT handoff: arms.light_peft.rank_ratio)

    @classmethod
    def of(cls, search: Any) -> "RankSettings":
        """From the `search` section: the granularity checked against its choices."""
        return cls(granularity=granularity(search), rank_ratio=float(getattr(search, "rank_ratio", None) or 0.0))


def granularity(search: Any) -> str:
    """`search.granularity` (validated; configs written before it existed mean `unit`)."""
    value = getattr(search, "granularity", None) or "unit"
    return check_choice("search.granularity", str(value), GRANULARITIES)


# ------------------------------------------------------------------------------ the unit rounds
def module_stop(budget: int, ratio: float) -> int:
    """Where the unit phase stops, in parameters: the first total <= B / (1 − ρ) (`search.rank_ratio`
    ρ; totals are integers, so the floor). ρ = 0 gives B itself."""
    return int(math.floor(int(budget) / (1.0 - float(ratio)) + 1e-9))


def select_round_for_ranks(p: Mapping[UnitId, float], k: int, param_counts: Mapping[UnitId, int],
                           active_total: int, budget: int, seed: int,
                           stop: int | None = None) -> tuple[list[UnitId], bool]:
    """`selection.select_round` for granularity=rank: the unit rounds end at `stop`, always ABOVE B.

    `stop` (>= B; default B) is where the unit phase ends: B / (1 − search.rank_ratio)
    (`module_stop`). Returns (removed units, last). When the top-k would reach
    <= stop, this is the last unit round: it removes the shortest prefix of the removal order that
    brings the total to <= stop, minus its last unit if that prefix reaches <= B (the rank stage
    must have something to remove: a run ends within one rank of B). With stop = B that is the
    longest prefix that keeps the total > B.
    """
    stop = int(budget if stop is None else stop)
    if stop < budget:
        raise ValueError(f"the unit phase's stop {stop} is below the budget {budget}")
    top = select_top_k(p, k, seed)
    if int(active_total) - sum(int(param_counts[u]) for u in top) > stop:
        return top, False
    prefix = select_for_budget(p, param_counts, active_total, stop, seed)
    if int(active_total) - sum(int(param_counts[u]) for u in prefix) <= budget:
        prefix = prefix[:-1]
    return prefix, True


# ------------------------------------------------------------------------------ the scores
def step_rank_scores(down: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    """s_i = |Σ_j A_ij g_ij| / d_in + |Σ_k B_ki g_ki| / d_out for one step (see module docstring)."""
    def wg(w: torch.Tensor) -> torch.Tensor:
        g = w.grad
        return torch.zeros_like(w, dtype=torch.float32) if g is None else w.detach().float() * g.detach().float()

    return wg(down).sum(1).abs() / down.shape[1] + wg(up).sum(0).abs() / up.shape[0]


class RankScores(Callback):
    """Per-step rank scores of every active branch, in the round's training pass."""

    def __init__(self, supernet: Any) -> None:
        self.supernet = supernet
        self._history: dict[tuple[UnitId, str], list[torch.Tensor]] = {}

    @torch.no_grad()
    def on_before_optimizer_step(self, step: int) -> None:
        for uid in self.supernet.active_ids():
            for site, branch in self.supernet.branches(uid):
                if branch.active:
                    self._history.setdefault((uid, site), []).append(step_rank_scores(*branch.rank_factors()))

    def scores(self) -> dict[UnitId, dict[str, torch.Tensor]]:
        """Mean over the second half of the recorded steps, per unit and site (CPU float32)."""
        out: dict[UnitId, dict[str, torch.Tensor]] = {}
        for (uid, site), steps in self._history.items():
            half = steps[len(steps) // 2:]
            out.setdefault(uid, {})[site] = torch.stack(half).mean(0).cpu()
        return out


def rank_callbacks(settings: RankSettings, supernet: Any) -> list[RankScores]:
    """The extra callback of a round's statistics pass (none under granularity=unit)."""
    return [RankScores(supernet)] if settings.granularity == "rank" else []


def attach_rank_scores(stats: Mapping[UnitId, Any], callbacks: list[RankScores]) -> None:
    """Put each unit's per-site rank scores on its UnitStatistics (`rank_scores`)."""
    for cb in callbacks:
        for uid, per_site in cb.scores().items():
            if uid in stats:
                stats[uid].rank_scores = per_site


# ------------------------------------------------------------------------------ the rank stage
def prune_ranks(supernet: Any, stats: Mapping[UnitId, Any], settings: RankSettings, budget: int, last: bool,
                seed: int, run: Any = None) -> list[UnitId]:
    """After the last unit round (granularity=rank): remove ranks, lowest score first, to <= B.

    Returns the units that lost every rank (deactivated here; the search records them as removed).
    """
    if settings.granularity != "rank" or not last:
        return []
    before = count_parameters(supernet).peft
    entries: list[tuple[float, UnitId, str, int]] = []
    for uid in supernet.active_ids():
        per_site = getattr(stats.get(uid), "rank_scores", None) or {}
        for site, branch in supernet.branches(uid):
            if not branch.active:
                continue
            score = per_site.get(site, torch.zeros(branch.num_ranks))
            mask = branch.rank_mask
            for i in range(branch.num_ranks):
                if mask is None or float(mask[i]) > 0:
                    entries.append((float(score[i]), uid, site, i))
    tie = np.random.default_rng(int(seed) % 2**63).permutation(len(entries))
    order = sorted(range(len(entries)), key=lambda n: (entries[n][0], int(tie[n])))
    branches = {(uid, site): b for uid in supernet.active_ids() for site, b in supernet.branches(uid)}
    total, dropped, deferred = before, 0, []
    for n in order:
        if total <= budget:
            break
        _, uid, site, i = entries[n]
        branch = branches[(uid, site)]
        if branch.kept_ranks() == 1 and total - branch.fixed_params() <= budget:
            # Its site's last rank takes the fixed part along, and that alone would cross B: the gap
            # to B would exceed one rank. Defer it; a later rank closes the gap to within one rank.
            deferred.append(n)
            continue
        total, dropped = _drop(branch, i, total), dropped + 1
    for n in deferred:  # nothing else was left to remove: the deferred ranks, in score order
        if total <= budget:
            break
        _, uid, site, i = entries[n]
        total, dropped = _drop(branches[(uid, site)], i, total), dropped + 1
    emptied = [uid for uid in supernet.active_ids() if all(b.kept_ranks() == 0 for _, b in supernet.branches(uid))]
    for uid in emptied:
        supernet.deactivate(uid)
    after = count_parameters(supernet).peft
    assert after == total, (after, total)  # the incremental costs are the accounting's
    ratio = settings.rank_ratio
    record = {"budget": budget, "rank_ratio": ratio, "module_stop": module_stop(budget, ratio),
              "params_before": before, "params_after": after, "ranks_removed": dropped,
              "units_emptied": [unit_key(u) for u in emptied],
              "kept": {unit_key(u): supernet.unit_sizes(u).site_sizes or "all" for u in supernet.active_ids()}}
    if run is not None:
        run.write_json(RANK_FILE, record)
    log.info("rank stage: %d ranks removed, %d units emptied, params %d -> %d (B = %d)",
             dropped, len(emptied), before, after, budget)
    return emptied


def _drop(branch: Any, index: int, total: int) -> int:
    """Mask rank `index` of `branch` out; the new total (its site's fixed part leaves with its last rank)."""
    was = branch.param_count()
    branch.drop_rank(index)
    return total - (was - branch.param_count())


# ------------------------------------------------------------------------------ the kept ranks
def kept_tensors(supernet: Any) -> dict[str, torch.Tensor]:
    """The active units' tensors with every site sliced to the ranks it kept, and the head's.

    Keys as `prunepeft.peft.weights.trained_tensors`; the shapes are those of the found
    configuration's units (`Supernet.from_units` with the per-site sizes), so the retrain can load
    them (`search.retrain_init=warm`). A rank is the row of the down matrix (and its bias, for an
    adapter) with the column of the up matrix (`Branch.rank_factors`); every other tensor (DoRA's
    magnitude, the adapter up-bias) is a fixed part, kept whole. A site that kept no rank is left
    out (the found configuration has no branch there); a site that kept every rank is copied as is.
    Sliced like Light-PEFT's rank pruning of its stage-1 weights (kept rows of A, columns of B).
    """
    out = {k: v for k, v in trained_tensors(supernet).items() if k.startswith(HEAD_PREFIX)}
    for uid in supernet.active_ids():
        for site, branch in supernet.branches(uid):
            if branch.kept_ranks() == 0:
                continue
            down, up = branch.rank_factors()
            rank_dim = {id(down): 0, id(up): 1}
            for module in branch.modules():  # the down projection's bias goes with its rows
                if getattr(module, "weight", None) is down and getattr(module, "bias", None) is not None:
                    rank_dim[id(module.bias)] = 0
            keep = None if branch.rank_mask is None else torch.nonzero(branch.rank_mask.cpu() > 0).flatten()
            for name, param in branch.named_parameters():
                tensor = param.detach().cpu()
                if keep is not None and id(param) in rank_dim:
                    tensor = tensor.index_select(rank_dim[id(param)], keep)
                out[f"{unit_key(uid)}.{site}.{name}"] = tensor.clone()
    return out


# ------------------------------------------------------------------------------ checkpoint
def rank_tensors(supernet: Any) -> dict[str, torch.Tensor]:
    """The rank masks of active units, for the search checkpoint (keys under RANK_PREFIX)."""
    return {f"{RANK_PREFIX}{unit_key(uid)}.{site}": b.rank_mask.detach().cpu().clone()
            for uid in supernet.active_ids() for site, b in supernet.branches(uid) if b.rank_mask is not None}


def restore_rank_tensors(supernet: Any, tensors: Mapping[str, torch.Tensor]) -> None:
    """Re-install the rank masks saved by `rank_tensors` (other keys are ignored)."""
    for key, mask in tensors.items():
        if not key.startswith(RANK_PREFIX):
            continue
        ukey, _, site = key[len(RANK_PREFIX):].rpartition(".")
        dict(supernet.branches(parse_unit_key(ukey)))[site].set_rank_mask(mask)
