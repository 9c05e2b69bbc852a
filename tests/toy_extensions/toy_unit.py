"""A toy unit type with a size setting of its own: a low-rank parallel branch on the attention value
projection only, of rank `toy_rank` (config `model.toy_rank`, default in toy_unit.yaml beside this file)."""
from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from prunepeft.errors import UserError
from prunepeft.peft.units.base import UnitSizes, UnitType
from prunepeft.peft.units.lora import LoraBranch


@dataclass(frozen=True)
class ToyValueSettings:
    """`model.toy_rank`: the rank of the toy branch (its scaling is 1)."""

    toy_rank: int = 2

    def __post_init__(self) -> None:
        if self.toy_rank < 1:
            raise UserError(f"model.toy_rank must be >= 1, got {self.toy_rank!r}")


class ValueOnlyType(UnitType):
    name = "toy_value"
    kind = "parallel"
    sites = ("value",)
    settings = ToyValueSettings
    size_field = "toy_rank"

    def make_branch(self, linear: nn.Linear, sizes: UnitSizes, site: str | None = None) -> nn.Module:
        r = self.site_size(sizes, site)
        return LoraBranch(linear, r, alpha=float(sizes.toy_rank), dropout=0.0, scale_r=sizes.toy_rank)

    def site_param_count(self, in_features: int, out_features: int, sizes: UnitSizes, site: str | None = None) -> int:
        return self.site_size(sizes, site) * (in_features + out_features)
