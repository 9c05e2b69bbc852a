"""`masked_loss`: pruning by the ground truth. A unit's prunability is minus the rise in held-aside
loss when it ALONE is masked (issue 26; docs/method.md#the-masked_loss-criterion).

The same measurement as the instrument (`pruning.masked.MaskedProbe`, which the diagnostics instrument builds on: real masked forward passes in
eval mode under no_grad), on rows of its own: `search.masked_loss.probe` rows of the run's unused
training rows, label-stratified with seed + MASKED_LOSS_SEED_OFFSET, after removing the rows the
diagnostics probe and the agreement probe draw (removed whenever the pool could hold them, whether
those probes run or not, so that turning them on or off changes nothing this criterion sees).

Not a training statistic: it declares the need `masked_loss`, and the StatisticsCollector that
gathers a phase's statistics runs the probe once per scoring (each warm-up snapshot, the end of each
round) when it is given one (`prunepeft.pruning.masked_probe.masked_loss_probe`: the rows and the
probe live there, beside the other probes, so that the criteria package imports no probe). Its passes are charged to the cost phases
`warmup_probes` and `round_probes`. Not in the default hybrid criteria: name it in `search.criteria`
or `strategy.criterion=masked_loss`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from prunepeft.errors import UserError
from prunepeft.pruning.criteria.base import Criterion, CriterionContext, Scores, Stats, require

# A third seed offset (a prime), beside masked.PROBE_SEED_OFFSET and masked.AGREEMENT_SEED_OFFSET.
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
