"""DoRA (Liu et al. 2024): weight-decomposed LoRA, matching peft's `DoraLinearLayer` forward.

    W' = m · (W + s·BA) / ||W + s·BA||_row        (the norm is detached, DoRA §4.3)
    delta = (m/||·|| - 1) · (W x) + (m/||·||) · s · B A x

The magnitude vector `m` (one entry per output feature) IS trained: it is a unit parameter,
counted in the budget, but left out of the weight-based criteria (docs/method.md#weights-only: it is
≈||W|| and would dominate them).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from prunepeft.peft.units.lora import LoraBranch, LoraType
from prunepeft.peft.units.base import UnitSizes
from prunepeft.peft.wrapper import Branch


class DoraBranch(LoraBranch):
    """LoRA plus a trainable magnitude vector; reads the (frozen) base Linear's weight."""

    def __init__(self, linear: nn.Linear, r: int, alpha: float, dropout: float, scale_r: int | None = None) -> None:
        super().__init__(linear, r, alpha, dropout, scale_r)
        # Plain attribute, not a submodule: the base weight must not count as a unit parameter.
        self.__dict__["_base"] = linear
        dtype = self.lora_A.weight.dtype
        self.lora_magnitude = nn.Parameter(torch.empty(linear.out_features, device=linear.weight.device, dtype=dtype))

    def weight_norm(self) -> torch.Tensor:
        """Row norm of W + s·BA (one per output feature), detached as in DoRA §4.3."""
        w = self._base.weight.to(self.lora_A.weight.dtype)
        a = self.lora_A.weight if self.rank_mask is None else self.lora_A.weight * self.rank_mask.view(-1, 1)
        lora_weight = self.lora_B.weight @ a
        return torch.linalg.norm(w + self.scaling * lora_weight.detach(), dim=1).detach()

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        base = self._base
        x = x.to(self.lora_A.weight.dtype)
        scale = (self.lora_magnitude / self.weight_norm()).view(1, -1)
        if isinstance(self.lora_dropout, nn.Identity) or not self.training:
            base_out = h.to(x.dtype)
            if base.bias is not None:
                base_out = base_out - base.bias.to(x.dtype)
        else:
            # With dropout, peft recomputes W·dropout(x) so that both terms see the same input.
            x = self.lora_dropout(x)
            base_out = F.linear(x, base.weight.to(x.dtype))
        lora_out = self.lora_B(self._mask_ranks(self.lora_A(x)))
        return ((scale - 1) * base_out + scale * lora_out * self.scaling).to(h.dtype)

    def fixed_params(self) -> int:
        return int(self.lora_magnitude.numel())

    def reset(self, scheme: str, generator: torch.Generator | None, hidden: int) -> None:
        super().reset(scheme, generator, hidden)
        # peft's DoRA init: m = ||W + s·BA|| (row norm) of the fresh A, B, so a fresh unit computes
        # exactly the LoRA update s·BAx. That is ||W|| under `standard` (B = 0); under `paper`
        # (Eq. 4-5, B != 0) ||W|| would instead rescale every row of W + s·BA from the first step.
        with torch.no_grad():
            self.lora_magnitude.copy_(self.weight_norm().to(self.lora_magnitude.dtype))



class DoraType(LoraType):
    name = "dora"

    def make_branch(self, linear: nn.Linear, sizes: UnitSizes, site: str | None = None) -> Branch:
        return DoraBranch(linear, self.site_size(sizes, site), sizes.lora_alpha, sizes.lora_dropout, sizes.lora_r)

    def site_param_count(self, in_features: int, out_features: int, sizes: UnitSizes, site: str | None = None) -> int:
        r = self.site_size(sizes, site)
        return r * (in_features + out_features) + out_features if r else 0  # the magnitude leaves with the site

