"""The masked_loss criterion's probe: its rows, disjoint from the diagnostics' and the agreement probe's,
and the masked passes over them (`masked.MaskedProbe`). The criterion itself (`criteria/masked_loss.py`)
only reads the rises the StatisticsCollector puts in the unit statistics (docs/method.md#the-masked_loss-criterion).
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Optional

import numpy as np

from prunepeft.config.typed import ProbeSettings
from prunepeft.errors import UserError
from prunepeft.pruning.criteria.masked_loss import MASKED_LOSS_SEED_OFFSET, MaskedLossCriterion


def _without(pool: Any, size: int, seed: int, task: Any) -> Any:
    """`pool` less the `size` rows a stratified draw with `seed` takes (unchanged when it cannot hold them)."""
    from prunepeft.data.glue import column_values
    from prunepeft.data.subsets import stratified_indices

    if size < 2 or len(pool) < size:
        return pool
    labels = np.asarray(column_values(pool, task.label_field))
    taken = set(stratified_indices(labels, size, seed, int(task.num_labels) == 1).tolist())
    return pool.select([i for i in range(len(pool)) if i not in taken])


def masked_loss_rows(probes: ProbeSettings, size: int, pool: Any) -> Any:
    """The raw rows of the masked_loss probe (see the module doc): `size` rows
    (`search.masked_loss.probe`) of `pool` once the other probes' rows are out.

    Raises:
        UserError: no unused training rows, or fewer than `size` left.
    """
    from prunepeft.data.subsets import stratified_subset
    from prunepeft.pruning.masked import AGREEMENT_AUTO_ROWS, AGREEMENT_SEED_OFFSET, PROBE_SEED_OFFSET

    seed, task = probes.seed, probes.task
    if pool is not None:
        pool = _without(pool, probes.diagnostics_rows, seed + PROBE_SEED_OFFSET, task)
        asked = probes.agreement_rows
        # agreement_probe null: every row left up to 512, when at least 128 are (assign_rules.agreement_rows)
        agreement = (int(asked) if asked is not None else min(len(pool), AGREEMENT_AUTO_ROWS[1])
                     if len(pool) >= AGREEMENT_AUTO_ROWS[0] else 0)
        pool = _without(pool, agreement, seed + AGREEMENT_SEED_OFFSET, task)
    have = 0 if pool is None else len(pool)
    if have < size:
        raise UserError(
            f"the masked_loss criterion needs {size} training rows the search never trains on (outside the "
            f"diagnostics and agreement probes), but only {have} are left: set data.train_subset (e.g. 2000) "
            f"or lower search.masked_loss.probe")
    return stratified_subset(pool, size, seed + MASKED_LOSS_SEED_OFFSET, task.label_field, int(task.num_labels) == 1)


def masked_loss_probe(probes: ProbeSettings, context: Any, data: Any, tokenizer: Any,
                      criteria: Iterable[str]) -> Optional[Any]:
    """The `masked.MaskedProbe` of the masked_loss criterion, or None when `criteria` do not include it.

    `context`: the criteria's `CriterionContext`, which holds the criterion's own settings (its probe size).
    """
    from prunepeft.data.tokenize import make_loader, tokenize_split
    from prunepeft.pruning.masked import MaskedProbe

    if MaskedLossCriterion.name not in set(criteria):
        return None
    size = context.settings_of(MaskedLossCriterion).probe
    rows = masked_loss_rows(probes, size, None if data is None else data.unused_train)
    ds = tokenize_split(rows, tokenizer, probes.task, probes.max_length)
    batches = list(make_loader(ds, tokenizer, batch_size=probes.eval_batch_size, shuffle=False, seed=0))
    return MaskedProbe(batches, int(probes.task.num_labels), probes.precision, probes.seed)
