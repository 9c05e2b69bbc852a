"""`masked_loss`: pruning by the ground truth. A unit's prunability is minus the rise in held-aside
loss when it ALONE is masked (issue 26; docs/method.md#the-masked_loss-criterion).

The same measurement as the instrument (`pruning.masked.MaskedProbe`, which the diagnostics instrument builds on: real masked forward passes in
eval mode under no_grad), on rows of its own: `search.masked_loss.probe` rows of the run's unused
training rows, label-stratified with seed + MASKED_LOSS_SEED_OFFSET, after removing the rows the
diagnostics probe and the agreement probe draw (removed whenever the pool could hold them, whether
those probes run or not, so that turning them on or off changes nothing this criterion sees).

Not a training statistic: it declares the need `masked_loss`, and the StatisticsCollector that
gathers a phase's statistics runs the probe once per scoring (each warm-up snapshot, the end of each
round) when it is given one (`masked_loss_probe`). Its passes are charged to the cost phases
`warmup_probes` and `round_probes`. Not in the default hybrid criteria: name it in `search.criteria`
or `strategy.criterion=masked_loss`.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from prunepeft.errors import UserError
from prunepeft.pruning.criteria.base import Criterion, CriterionContext, Scores, Stats, require

# A third seed offset (a prime), beside masked.PROBE_SEED_OFFSET and assign_rules.AGREEMENT_SEED_OFFSET.
MASKED_LOSS_SEED_OFFSET = 32452843


@dataclass(frozen=True)
class MaskedLossSettings:
    """`search.masked_loss.*`: this criterion's own settings (the config's defaults: `masked_loss.yaml` beside this file)."""

    probe: int = 256  # held-aside training rows of the masked passes

    def __post_init__(self) -> None:
        if isinstance(self.probe, bool) or not isinstance(self.probe, int) or self.probe < 2:
            raise UserError(f"search.masked_loss.probe must be an integer >= 2, got {self.probe!r}")


class MaskedLossCriterion(Criterion):
    """Loss rise on its probe when the unit alone is masked; oriented = −rise (harmless units first)."""

    name = "masked_loss"
    needs = frozenset({"masked_loss"})
    higher_is_prunable = False
    settings = MaskedLossSettings
    in_default_hybrid = False  # the ground truth, costly: only when named in search.criteria

    def raw(self, stats: Stats, ctx: CriterionContext) -> Scores:
        return {uid: float(require(s.masked_loss, uid, "masked_loss", self.name)) for uid, s in stats.items()}


def probe_size(search: Any) -> int:
    """`search.masked_loss.probe`, with `search.criterion_settings.masked_loss.probe` on top (checked)."""
    values = dict(search.get("masked_loss") or {})
    values.update(dict((search.get("criterion_settings") or {}).get("masked_loss") or {}))
    return MaskedLossSettings(**values).probe


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
