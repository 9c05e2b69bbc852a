"""Per-unit statistics gathered in one training pass; every criterion of Table 1 reads these."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

# (layer index, unit type name), e.g. (3, "lora"); the same alias as prunepeft.peft.units.
UnitId = tuple[int, str]

STAT_KINDS = frozenset({"weights", "grad", "taylor", "activation", "output_ratio", "masked_loss"})


@dataclass
class UnitStatistics:
    """What the criteria know about one unit after a round (or a warm-up snapshot).

    Attributes:
        weights: the unit's criterion parameters (every tensor except DoRA's magnitude) flattened
            and concatenated; detached, CPU, float32, 1-D.
        grad_abs: per-element mean over the optimizer steps of |∂L/∂w| (same layout as
            `weights`), or None when not collected.
        taylor_abs: per-element mean over the optimizer steps of |w·∂L/∂w| (w at that step), or
            None when not collected.
        activation: mean |Δ| of the unit's branch output over non-pad tokens and features,
            averaged over the unit's sites, or None when not collected.
        steps: optimizer steps accumulated into `grad_abs` / `taylor_abs`.
    """

    weights: torch.Tensor
    grad_abs: Optional[torch.Tensor] = None
    taylor_abs: Optional[torch.Tensor] = None
    activation: Optional[float] = None
    steps: int = 0
    # ||Δ|| / ||base|| per non-pad token, mean over the second half of the forwards, over sites.
    output_ratio: Optional[float] = None
    # granularity=rank: per site, the per-rank Taylor score (arms/rank_stage.py), else None.
    rank_scores: Optional[dict[str, torch.Tensor]] = None
    # The loss rise on the masked_loss probe when this unit alone is masked (criteria/masked_loss.py).
    masked_loss: Optional[float] = None

    @property
    def numel(self) -> int:
        """Number of criterion elements (the |w| of Table 1's per-element means)."""
        return int(self.weights.numel())

    def summary(self) -> dict[str, float | int | None]:
        """Scalar summary for `rounds.jsonl` (JSON-serialisable)."""

        def mean(t: Optional[torch.Tensor]) -> float | None:
            return None if t is None else float(t.double().mean())

        return {
            "numel": self.numel,
            "weight_rms": float(self.weights.double().pow(2).mean().sqrt()),
            "grad_abs_mean": mean(self.grad_abs),
            "taylor_abs_mean": mean(self.taylor_abs),
            "activation": self.activation,
            "steps": self.steps,
        }
