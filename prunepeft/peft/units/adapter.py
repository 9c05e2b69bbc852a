"""Bottleneck adapter, Pfeiffer placement: serial, after the FFN output projection.

    out = h + up(act(down(h)))

`ffn_out` is the FFN's output Linear (BERT `output.dense`, Llama `mlp.down_proj`), so the adapter
acts before the residual add / LayerNorm that follows it — the placement of the authors' code.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from prunepeft.errors import UserError, check_choice, choice_error
from prunepeft.peft.units.base import UnitSizes, UnitType
from prunepeft.peft.wrapper import INIT_SCHEMES, Branch, branch_dtype, init_down_up, init_zeros

# Adapter activations by config name (`model.adapter_activation`).
ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "swish": nn.SiLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "identity": nn.Identity,
}


@dataclass(frozen=True)
class AdapterSettings:
    """The adapters' (and Houlsby's) size settings: `model.<field>`, defaults in `adapter.yaml`."""

    adapter_bottleneck: int = 64  # bottleneck width b (the size knob: budget-sized baselines, rank pruning)
    adapter_activation: str = "relu"  # a name in ACTIVATIONS

    def __post_init__(self) -> None:
        if self.adapter_bottleneck < 1:
            raise UserError(f"adapter_bottleneck must be >= 1, got {self.adapter_bottleneck}")
        if self.adapter_activation not in ACTIVATIONS:
            raise choice_error("adapter activation", self.adapter_activation, ACTIVATIONS)


def make_activation(name: str) -> nn.Module:
    """The activation module for `name` (UserError naming the valid choices on unknown names)."""
    return ACTIVATIONS[check_choice("adapter activation", name, ACTIVATIONS)]()


class AdapterBranch(Branch):
    """delta = up(act(down(h))) on the site's output h (width `out_features`)."""

    kind = "serial"

    def __init__(self, linear: nn.Linear, bottleneck: int, activation: str) -> None:
        super().__init__()
        kw = {"device": linear.weight.device, "dtype": branch_dtype(linear)}
        width = linear.out_features
        self.down = nn.Linear(width, int(bottleneck), **kw)
        self.act = make_activation(activation)
        self.up = nn.Linear(int(bottleneck), width, **kw)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.up(self._mask_ranks(self.act(self.down(h.to(self.down.weight.dtype))))).to(h.dtype)

    def rank_factors(self) -> tuple[torch.Tensor, torch.Tensor]:
        # A bottleneck dimension: a down row (+ its bias) and an up column; 2h + 1 parameters.
        return self.down.weight, self.up.weight

    def fixed_params(self) -> int:
        return int(self.up.bias.numel())

    def reset(self, scheme: str, generator: torch.Generator | None, hidden: int) -> None:
        check_choice("init scheme", scheme, INIT_SCHEMES)
        # `standard`: up weight and bias exactly 0, so a fresh adapter is an exact identity.
        init_down_up(self.down.weight, self.up.weight, scheme, generator, hidden)
        init_zeros(self.down.bias)
        init_zeros(self.up.bias)


class AdapterType(UnitType):
    name = "adapter"
    kind = "serial"
    sites = ("ffn_out",)
    settings = AdapterSettings
    size_field = "adapter_bottleneck"

    def make_branch(self, linear: nn.Linear, sizes: UnitSizes, site: str | None = None) -> Branch:
        return AdapterBranch(linear, self.site_size(sizes, site), sizes.adapter_activation)

    def site_param_count(self, in_features: int, out_features: int, sizes: UnitSizes, site: str | None = None) -> int:
        # down (h·b + b) + up (b·h + h); a site with no dimension left has no adapter at all
        b = self.site_size(sizes, site)
        return 2 * out_features * b + b + out_features if b else 0

