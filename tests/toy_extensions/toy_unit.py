"""A toy unit type: a low-rank parallel branch on the attention value projection only."""
from __future__ import annotations

from torch import nn

from prunepeft.peft.units.lora import LoraBranch
from prunepeft.peft.units.base import UnitSizes, UnitType


class ValueOnlyType(UnitType):
    name = "toy_value"
    kind = "parallel"
    sites = ("value",)
    size_field = "lora_r"
    json_fields = ("lora_r", "lora_alpha", "lora_dropout")

    def make_branch(self, linear: nn.Linear, sizes: UnitSizes, site: str | None = None) -> nn.Module:
        return LoraBranch(linear, self.site_size(sizes, site), sizes.lora_alpha, sizes.lora_dropout, sizes.lora_r)

    def site_param_count(self, in_features: int, out_features: int, sizes: UnitSizes, site: str | None = None) -> int:
        return self.site_size(sizes, site) * (in_features + out_features)
