"""The masked_loss criterion's probe: its rows, disjoint from the diagnostics' and the agreement probe's,
and the masked passes over them (`masked.MaskedProbe`). The criterion itself (`criteria/masked_loss.py`)
only reads the rises the StatisticsCollector puts in the unit statistics (docs/method.md#the-masked_loss-criterion).
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Optional

import numpy as np

from prunepeft.errors import UserError
from prunepeft.pruning.criteria.masked_loss import MASKED_LOSS_SEED_OFFSET, MaskedLossCriterion, probe_size


def _without(pool: Any, size: int, seed: int, cfg: Any) -> Any:
    """`pool` less the `size` rows a stratified draw with `seed` takes (unchanged when it cannot hold them)."""
    from prunepeft.data.glue import column_values
    from prunepeft.data.subsets import stratified_indices

    if size < 2 or len(pool) < size:
        return pool
    labels = np.asarray(column_values(pool, cfg.task.label_field))
    taken = set(stratified_indices(labels, size, seed, int(cfg.task.num_labels) == 1).tolist())
    return pool.select([i for i in range(len(pool)) if i not in taken])


def masked_loss_rows(cfg: Any, pool: Any) -> Any:
    """The raw rows of the masked_loss probe (see the module doc).

    Raises:
        UserError: no unused training rows, or fewer than `search.masked_loss.probe` left.
    """
    from prunepeft.data.subsets import stratified_subset
    from prunepeft.pruning.masked import AGREEMENT_AUTO_ROWS, AGREEMENT_SEED_OFFSET, PROBE_SEED_OFFSET

    size = probe_size(cfg.search)
    seed = int(cfg.seed)
    if pool is not None:
        pool = _without(pool, int(cfg.search.diagnostics.probe), seed + PROBE_SEED_OFFSET, cfg)
        asked = cfg.search.warmup.get("agreement_probe")
        # agreement_probe null: every row left up to 512, when at least 128 are (assign_rules.agreement_rows)
        agreement = (int(asked) if asked is not None else min(len(pool), AGREEMENT_AUTO_ROWS[1])
                     if len(pool) >= AGREEMENT_AUTO_ROWS[0] else 0)
        pool = _without(pool, agreement, seed + AGREEMENT_SEED_OFFSET, cfg)
    have = 0 if pool is None else len(pool)
    if have < size:
        raise UserError(
            f"the masked_loss criterion needs {size} training rows the search never trains on (outside the "
            f"diagnostics and agreement probes), but only {have} are left: set data.train_subset (e.g. 2000) "
            f"or lower search.masked_loss.probe")
    return stratified_subset(pool, size, seed + MASKED_LOSS_SEED_OFFSET, cfg.task.label_field,
                             int(cfg.task.num_labels) == 1)


def masked_loss_probe(cfg: Any, data: Any, tokenizer: Any, criteria: Iterable[str]) -> Optional[Any]:
    """The `masked.MaskedProbe` of the masked_loss criterion, or None when `criteria` do not include it."""
    from prunepeft.data.tokenize import make_loader, tokenize_split
    from prunepeft.pruning.masked import MaskedProbe

    if MaskedLossCriterion.name not in set(criteria):
        return None
    rows = masked_loss_rows(cfg, None if data is None else data.unused_train)
    ds = tokenize_split(rows, tokenizer, cfg.task, int(cfg.train.max_length))
    batches = list(make_loader(ds, tokenizer, batch_size=int(cfg.train.eval_batch_size), shuffle=False, seed=0))
    return MaskedProbe(batches, int(cfg.task.num_labels), str(cfg.train.precision), int(cfg.seed))
