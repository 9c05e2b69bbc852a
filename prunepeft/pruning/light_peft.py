"""Light-PEFT's estimation length for a pruning round (`search.round_steps`; issue 14, Deliver 3).

Light-PEFT (Gu et al., Findings of ACL 2024) estimates for a fixed, short run: 800 optimizer steps,
about 3.8 % of its 10-epoch fine-tuning on SST-2. Scaled to any task and retrain length, that is

    N = max(100, ⌈0.04 × retrain steps⌉),   retrain steps = retrain epochs × ⌈|D| / batch⌉

(`prunepeft.models.backbone_prune.estimation_steps`; the backbone masks' estimation uses the same rule).
`search.round_steps` sets how long each pruning round trains while it collects its statistics:

- null (the default): one epoch over the round's set (Algorithm 1; D, or d at `search.fidelity=low`);
- `light_peft`: N optimizer steps by the rule above (`strategy=light_peft` sets it);
- an integer n >= 1: n optimizer steps.

A round of n steps trains on a label-stratified subset of n × `train.batch_size` rows of the round's
set, drawn with the round's seed (so a resumed search redraws the same rows), for one epoch: exactly
n steps. When the set has fewer rows it trains ⌈rows / |set|⌉ epochs over all of it (at least n steps).
"""
from __future__ import annotations

import logging
import math
from typing import Any, Optional

from prunepeft.errors import UserError

log = logging.getLogger(__name__)

LIGHT_PEFT = "light_peft"


def retrain_steps(cfg: Any, train_size: int) -> int:
    """Optimizer steps of the search's retrain on `train_size` rows (at least one epoch)."""
    epochs = cfg.search.retrain_epochs if cfg.search.retrain_epochs is not None else cfg.train.epochs
    return max(1, int(epochs)) * math.ceil(int(train_size) / int(cfg.train.batch_size))


def _setting(cfg: Any) -> Optional[str]:
    value = getattr(cfg.search, "round_steps", None)  # configs written before it existed: one epoch
    return None if value is None else str(value)


def validate(cfg: Any) -> None:
    """The cheap check of `search.round_steps` (before the run directory is written)."""
    value = _setting(cfg)
    if value is None:
        return
    if value == LIGHT_PEFT:
        if str(cfg.search.fidelity) == "low":
            raise UserError("search.round_steps=light_peft counts its steps on the full training set D (Light-PEFT's "
                            "estimation); it does not combine with search.fidelity=low (rounds on the subset d): "
                            "drop one, or give search.round_steps=<n>")
        return
    if not value.lstrip("-").isdigit() or int(value) < 1:
        raise UserError(f"search.round_steps must be null (one epoch), light_peft (max(100, ceil(0.04 x retrain "
                        f"steps))) or an integer >= 1, got {value!r}")


def round_steps(cfg: Any, train_size: int) -> Optional[int]:
    """The round's optimizer steps, or None for one epoch over its set (`train_size` = |D|)."""
    from prunepeft.models.backbone_prune import estimation_steps

    value = _setting(cfg)
    if value is None:
        return None
    return estimation_steps(retrain_steps(cfg, train_size)) if value == LIGHT_PEFT else int(value)


def round_data(cfg: Any, train_ds: Any, seed: int) -> tuple[Any, int]:
    """(rows, epochs) a round trains on: its whole set for one epoch, or the n-step slice of the module docstring."""
    from prunepeft.data import stratified_subset

    steps = round_steps(cfg, len(train_ds))
    if steps is None:
        return train_ds, 1
    rows = steps * int(cfg.train.batch_size)
    if rows >= len(train_ds):
        return train_ds, math.ceil(rows / len(train_ds))
    log.info("round of %d optimizer steps (search.round_steps=%s): %d of %d rows", steps, _setting(cfg), rows,
             len(train_ds))
    return stratified_subset(train_ds, rows, seed, "labels", int(cfg.task.num_labels) == 1,
                             key="search.round_steps"), 1
