"""Light-PEFT's estimation length for a pruning round (`search.round_steps`; issue 14, Deliver 3).

Light-PEFT (Gu et al., Findings of ACL 2024) estimates for a fixed, short run: 800 optimizer steps,
about 3.8 % of its 10-epoch fine-tuning on SST-2. Scaled to any task and retrain length, that is

    N = max(100, ⌈0.04 × retrain steps⌉),   retrain steps = retrain epochs × ⌈|D| / batch⌉

(`prunepeft.arms.backbone_prune.estimation_steps`; the backbone masks' estimation uses the same rule).
`search.round_steps` sets how long each pruning round trains while it collects its statistics:

- null (the default): one epoch over the round's set (Algorithm 1; D, or d at `search.fidelity=low`);
- `light_peft`: N optimizer steps by the rule above (`strategy=light_peft` sets it);
- an integer n >= 1: n optimizer steps.

A round of n steps trains on a label-stratified subset of n × `train.batch_size` rows of the round's
set, drawn with the round's seed (so a resumed search redraws the same rows), for one epoch: exactly
n steps. When the set has fewer rows it trains ⌈rows / |set|⌉ epochs over all of it (at least n steps).

Two more settings make the arm faithful to Light-PEFT's stage 2 (docs/method.md, "The Light-PEFT arm"):

- `search.rank_ratio` ρ (`strategy=light_peft`: 0.5, Light-PEFT's `rank_pruning_ratio`; null = 0): under
  `search.granularity=rank` the unit rounds stop at the first total <= B / (1 − ρ), so the rank stage
  removes about ρ of the survivors' parameters, as Light-PEFT's rank quantile does
  (`rank_stage.module_stop`, `rank_stage.select_round_for_ranks`);
- `search.retrain_init` (`fresh` | `warm`; null = fresh, `strategy=light_peft`: warm): `warm` starts
  the retrain from the search's trained units, sliced to the ranks they kept, and its trained head,
  as Light-PEFT loads its stage-1 `adapter_model.bin` (LoRA weights + classifier) before stage 2
  (`start_retrain`). `fresh` is our retrain (fresh units, fresh head): like for like with PrunePEFT.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any, Optional

from prunepeft.errors import UserError, check_choice

log = logging.getLogger(__name__)

LIGHT_PEFT = "light_peft"
RETRAIN_INITS = ("fresh", "warm")


@dataclass(frozen=True)
class RoundSettings:
    """What a round's length reads (`search.round_steps` and the retrain it is a share of), typed once
    by the arm (`LightPeftArm.configure`)."""

    round_steps: Optional[str]  # null (one epoch) | light_peft | n, as validated
    retrain_epochs: int  # search.retrain_epochs, else train.epochs
    batch_size: int  # train.batch_size
    regression: bool  # task.num_labels == 1: the rows are drawn without label strata

    @classmethod
    def of(cls, search: Any, train: Any, num_labels: int) -> "RoundSettings":
        """From the `search` and `train` sections (after `validate(search)`)."""
        epochs = search.retrain_epochs if search.retrain_epochs is not None else train.epochs
        return cls(round_steps=_setting(search), retrain_epochs=int(epochs), batch_size=int(train.batch_size),
                   regression=int(num_labels) == 1)


def retrain_steps(epochs: int, batch_size: int, train_size: int) -> int:
    """Optimizer steps of the search's retrain (`epochs` of it, at least one) on `train_size` rows."""
    return max(1, int(epochs)) * math.ceil(int(train_size) / int(batch_size))


def _setting(search: Any) -> Optional[str]:
    value = getattr(search, "round_steps", None)  # configs written before it existed: one epoch
    return None if value is None else str(value)


def validate(search: Any) -> None:
    """The cheap checks of `search.round_steps`, `search.rank_ratio` and `search.retrain_init`
    (before the run directory is written)."""
    _validate_handoff(search)
    value = _setting(search)
    if value is None:
        return
    if value == LIGHT_PEFT:
        if str(search.fidelity) == "low":
            raise UserError("search.round_steps=light_peft counts its steps on the full training set D (Light-PEFT's "
                            "estimation); it does not combine with search.fidelity=low (rounds on the subset d): "
                            "drop one, or give search.round_steps=<n>")
        return
    if not value.lstrip("-").isdigit() or int(value) < 1:
        raise UserError(f"search.round_steps must be null (one epoch), light_peft (max(100, ceil(0.04 x retrain "
                        f"steps))) or an integer >= 1, got {value!r}")


def round_steps(settings: RoundSettings, train_size: int) -> Optional[int]:
    """The round's optimizer steps, or None for one epoch over its set (`train_size` = |D|)."""
    from prunepeft.arms.backbone_prune import estimation_steps

    value = settings.round_steps
    if value is None:
        return None
    if value == LIGHT_PEFT:
        return estimation_steps(retrain_steps(settings.retrain_epochs, settings.batch_size, train_size))
    return int(value)


def round_data(settings: RoundSettings, train_ds: Any, seed: int) -> tuple[Any, int]:
    """(rows, epochs) a round trains on: its whole set for one epoch, or the n-step slice of the module docstring."""
    from prunepeft.data import stratified_subset

    steps = round_steps(settings, len(train_ds))
    if steps is None:  # Algorithm 1's round: one epoch over its set
        return train_ds, 1
    rows = steps * settings.batch_size
    if rows >= len(train_ds):
        return train_ds, math.ceil(rows / len(train_ds))
    log.info("round of %d optimizer steps (search.round_steps=%s): %d of %d rows", steps, settings.round_steps, rows,
             len(train_ds))
    return stratified_subset(train_ds, rows, seed, "labels", settings.regression, key="search.round_steps"), 1


# ------------------------------------------------------------------------------ the handoff
def retrain_init(search: Any) -> str:
    """`search.retrain_init`, validated (null and configs written before it existed: fresh)."""
    value = getattr(search, "retrain_init", None)
    return check_choice("search.retrain_init", "fresh" if value is None else str(value), RETRAIN_INITS)


def rank_ratio(search: Any) -> float:
    """`search.rank_ratio` ρ, validated: 0 <= ρ < 1, and ρ > 0 only under search.granularity=rank."""
    value = getattr(search, "rank_ratio", None)
    if value is None:
        return 0.0
    try:
        ratio = float(value)
    except (TypeError, ValueError):
        ratio = float("nan")
    if not 0.0 <= ratio < 1.0:  # also NaN
        raise UserError(f"search.rank_ratio must be a number in [0, 1) (the share of the survivors' parameters the "
                        f"rank stage removes; Light-PEFT's 0.5) or null (= 0), got {value!r}")
    granularity = str(getattr(search, "granularity", None) or "unit")
    if ratio > 0 and granularity != "rank":
        raise UserError(f"search.rank_ratio={value} stops the unit rounds at B / (1 - {value}) for the rank stage to "
                        f"finish; it needs search.granularity=rank, got search.granularity={granularity} "
                        f"(choices: rank, unit)")
    return ratio


def _validate_handoff(search: Any) -> None:
    rank_ratio(search)
    if retrain_init(search) == "warm" and bool(getattr(search, "fill_budget", False)):
        # A unit given back by fill_budget holds the weights it had when it was removed, which a
        # resumed search does not have (the checkpoint keeps the active units only).
        raise UserError("search.retrain_init=warm does not combine with search.fill_budget=true (a unit given back "
                        "has no estimation weights a resume could restore): drop one, or use "
                        "search.granularity=rank, which fills B without it")


def start_retrain(final: Any, supernet: Any, how: str) -> None:
    """Start the retrain of `final` (the found configuration, freshly built) as `search.retrain_init` says.

    `fresh`: nothing to do (fresh units and the fresh backbone's head). `warm`: copy in the search's
    trained units, each site sliced to the ranks it kept (`rank_stage.kept_tensors`), and its trained
    head, as Light-PEFT warm-starts stage 2 from stage 1. `supernet` is the search's, as the last
    round left it; after a resume it was restored from the search checkpoint's supernet tensors
    (`checkpoint.restore_weights`), so an interrupted search starts its retrain from the same values.
    """
    if how != "warm":
        return
    from prunepeft.peft.weights import load_trained_tensors
    from prunepeft.arms.rank_stage import kept_tensors

    load_trained_tensors(final, kept_tensors(supernet), where="the search's trained units (search.retrain_init=warm)")
    log.info("retrain warm-started from the search's trained units and head (search.retrain_init=warm)")
