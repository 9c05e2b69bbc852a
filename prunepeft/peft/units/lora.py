"""LoRA (Hu et al. 2022): a parallel low-rank branch, y = Wx + (alpha/r)·B·A·dropout(x).

One PrunePEFT *unit* covers the attention query AND value projections of one layer (the
authors' grouping), so a unit has two branches (site_index 0 = query, 1 = value). Parameter
names mirror peft's (`lora_A`, `lora_B`) so export is a straight copy.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from prunepeft.errors import UserError, check_choice
from prunepeft.peft.units.base import UnitSizes, UnitType
from prunepeft.peft.wrapper import INIT_SCHEMES, Branch, branch_dtype, init_down_up


@dataclass(frozen=True)
class LoraSettings:
    """LoRA's (and DoRA's) size settings: `model.<field>`, defaults in `lora.yaml` (docs/method.md#sizes)."""

    lora_r: int = 8  # rank r (the size knob: budget-sized baselines, rank pruning)
    lora_alpha: float = 16.0  # the branch is scaled by alpha / r
    lora_dropout: float = 0.0  # dropout on the branch input

    def __post_init__(self) -> None:
        if self.lora_r < 1:
            raise UserError(f"lora_r must be >= 1, got {self.lora_r}")
        if not 0.0 <= self.lora_dropout < 1.0:
            raise UserError(f"lora_dropout must be in [0, 1), got {self.lora_dropout}")


class LoraBranch(Branch):
    """The low-rank update of one Linear: delta = scaling · B(A(dropout(x)))."""

    kind = "parallel"

    def __init__(self, linear: nn.Linear, r: int, alpha: float, dropout: float, scale_r: int | None = None) -> None:
        super().__init__()
        kw = {"device": linear.weight.device, "dtype": branch_dtype(linear)}
        self.r = int(r)
        # alpha / r_original after rank pruning (`scale_r` = the rank before pruning), as
        # Light-PEFT keeps it: the kept ranks compute exactly what they did inside the full unit.
        self.scaling = float(alpha) / int(scale_r or r)
        self.lora_dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.lora_A = nn.Linear(linear.in_features, self.r, bias=False, **kw)
        self.lora_B = nn.Linear(self.r, linear.out_features, bias=False, **kw)

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        # Same op order as peft's LoraLayer.forward, so logits match bit for bit on CPU.
        x = x.to(self.lora_A.weight.dtype)
        return (self.lora_B(self._mask_ranks(self.lora_A(self.lora_dropout(x)))) * self.scaling).to(h.dtype)

    def rank_factors(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.lora_A.weight, self.lora_B.weight

    def reset(self, scheme: str, generator: torch.Generator | None, hidden: int) -> None:
        check_choice("init scheme", scheme, INIT_SCHEMES)
        init_down_up(self.lora_A.weight, self.lora_B.weight, scheme, generator, hidden)  # peft's default or Eq. (4)-(5)


class LoraType(UnitType):
    name = "lora"
    kind = "parallel"
    sites = ("query", "value")
    settings = LoraSettings
    size_field = "lora_r"

    def make_branch(self, linear: nn.Linear, sizes: UnitSizes, site: str | None = None) -> Branch:
        return LoraBranch(linear, self.site_size(sizes, site), sizes.lora_alpha, sizes.lora_dropout, sizes.lora_r)

    def site_param_count(self, in_features: int, out_features: int, sizes: UnitSizes, site: str | None = None) -> int:
        return self.site_size(sizes, site) * (in_features + out_features)

