"""The one wrapper per site Linear that holds the branches of every unit attached to it.

Forward (docs/method.md#supernet-and-units; parallel = LoRA/DoRA, serial = adapters):

    h   = base(x)
    h'  = h  + sum of active parallel deltas(x, h)
    out = h' + sum of active serial deltas(h')

An inactive branch is skipped entirely (no compute, not "multiplied by zero"), so a supernet
with every unit inactive computes exactly the plain backbone.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

# hook(uid, site_index, Δ, base): base = the output Δ is added to (h for parallel units, the
# serial unit's input for serial ones), for output-ratio statistics ||Δ|| / ||base||.
DeltaHook = Callable[[Any, int, torch.Tensor, torch.Tensor], None]
INIT_SCHEMES = ("standard", "paper")


def branch_dtype(linear: nn.Linear) -> torch.dtype:
    """PEFT weights stay float32 on a half-precision backbone (as peft's autocast_adapter_dtype)."""
    dtype = linear.weight.dtype
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def _fill(param: torch.Tensor, sample: Callable[[torch.Tensor], Any]) -> None:
    """Sample on CPU float32 (a CPU generator cannot draw on CUDA), then copy into `param`."""
    tmp = torch.empty(param.shape, dtype=torch.float32)
    sample(tmp)
    with torch.no_grad():
        param.copy_(tmp.to(param.device, param.dtype))


def init_kaiming(param: torch.Tensor, generator: torch.Generator | None) -> None:
    """nn.Linear's default weight init (peft's LoRA A): kaiming_uniform_ with a = sqrt(5)."""
    _fill(param, lambda t: nn.init.kaiming_uniform_(t, a=math.sqrt(5), generator=generator))


def init_normal(param: torch.Tensor, std: float, generator: torch.Generator | None) -> None:
    """N(0, std) (the paper's Eq. 4-5 with std = 1/sqrt(hidden))."""
    _fill(param, lambda t: nn.init.normal_(t, mean=0.0, std=std, generator=generator))


def init_zeros(param: torch.Tensor) -> None:
    with torch.no_grad():
        param.zero_()


def init_down_up(down: torch.Tensor, up: torch.Tensor, scheme: str, generator: torch.Generator | None,
                 hidden: int) -> None:
    """The two projections of a LoRA or bottleneck unit (A/B, down/up) under an init scheme.

    `standard`: Kaiming-uniform down (peft's LoRA A), zero up, so a fresh branch is an exact no-op.
    `paper`: Eq. (4)-(5), both projections N(0, 1/sqrt(hidden)).
    """
    if scheme == "standard":
        init_kaiming(down, generator)
        init_zeros(up)
    else:
        std = 1.0 / math.sqrt(hidden)
        init_normal(down, std, generator)
        init_normal(up, std, generator)


class Branch(nn.Module):
    """One unit's computation at one site. Subclasses implement `forward` and `reset`.

    Parallel branches: `forward(x, h) -> delta` (x the site input, h the base output).
    Serial branches: `forward(h) -> delta` (h the output after the parallel branches).
    """

    kind: str = "parallel"

    def __init__(self) -> None:
        super().__init__()
        self.active = True
        self.uid: Any = None
        self.site_index = 0
        # Rank-level pruning (docs/method.md, "Rank-level pruning"): a 0/1 mask over the rank
        # dimensions, None = every rank kept (the forward pass is then unchanged, bit for bit).
        self.register_buffer("rank_mask", None, persistent=False)

    def reset(self, scheme: str, generator: torch.Generator | None, hidden: int) -> None:
        """Re-initialise in place with `scheme` ("standard" or "paper", Eq. 4-5)."""
        raise NotImplementedError

    def criterion_parameters(self) -> list[nn.Parameter]:
        """The weight MATRICES every criterion reads (docs/method.md, "Weights only").

        Biases (adapters have them, LoRA has none) and DoRA's magnitude vector are trained and
        counted in the budget, but left out of every criterion: zero-initialised biases made an
        adapter look prunable by construction under weight, zeros and threshold.
        """
        return [p for p in self.parameters() if p.dim() >= 2]

    # ---- rank-level pruning: a rank = a row of the down projection and its column of the up one
    def rank_factors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(down [r, d_in], up [d_out, r]) weight matrices whose i-th row / column form rank i."""
        raise NotImplementedError

    def fixed_params(self) -> int:
        """Parameters that leave only with the whole site (DoRA magnitude, adapter up-bias)."""
        return 0

    @property
    def num_ranks(self) -> int:
        return int(self.rank_factors()[0].shape[0])

    def kept_ranks(self) -> int:
        return self.num_ranks if self.rank_mask is None else int(self.rank_mask.sum().item())

    def param_count(self) -> int:
        """Trainable parameters with masked ranks counted out; 0 once the last rank is gone."""
        kept = self.kept_ranks()
        if kept == 0:
            return 0
        full, fixed = sum(p.numel() for p in self.parameters()), self.fixed_params()
        return kept * ((full - fixed) // self.num_ranks) + fixed

    def drop_rank(self, index: int) -> None:
        """Mask rank `index` out; a site without ranks stops computing (its fixed part leaves too)."""
        mask = self.rank_mask
        if mask is None:
            mask = torch.ones(self.num_ranks, device=self.rank_factors()[0].device, dtype=torch.float32)
        mask = mask.clone()
        mask[int(index)] = 0.0
        self.set_rank_mask(mask)

    def set_rank_mask(self, mask: torch.Tensor | None) -> None:
        """Install a 0/1 rank mask (None: all ranks); the branch is active iff a rank is kept."""
        if mask is not None:
            mask = mask.detach().to(self.rank_factors()[0].device, torch.float32)
            if tuple(mask.shape) != (self.num_ranks,):
                raise ValueError(f"rank mask of shape {tuple(mask.shape)} for {self.num_ranks} ranks")
        self.rank_mask = mask
        self.active = self.kept_ranks() > 0

    def _mask_ranks(self, z: torch.Tensor) -> torch.Tensor:
        return z if self.rank_mask is None else z * self.rank_mask.to(z.dtype)


class PeftLinear(nn.Module):
    """Wraps a site's frozen nn.Linear and the branches attached to it, keyed by unit type."""

    def __init__(self, base: nn.Linear) -> None:
        super().__init__()
        self.base = base
        self.branches = nn.ModuleDict()
        self.delta_hook: DeltaHook | None = None
        self._parallel: tuple[Branch, ...] = ()
        self._serial: tuple[Branch, ...] = ()

    # Code inside HF models sometimes reads these off the projection (e.g. `.weight.dtype`).
    @property
    def in_features(self) -> int:
        return self.base.in_features

    @property
    def out_features(self) -> int:
        return self.base.out_features

    @property
    def weight(self) -> torch.Tensor:
        return self.base.weight

    @property
    def bias(self) -> torch.Tensor | None:
        return self.base.bias

    def add_branch(self, name: str, branch: Branch) -> None:
        """Attach a unit's branch under its unit-type name (one branch per type per site)."""
        if name in self.branches:
            raise ValueError(f"a {name!r} branch is already attached here")
        self.branches[name] = branch
        self._parallel = tuple(b for b in self.branches.values() if b.kind == "parallel")
        self._serial = tuple(b for b in self.branches.values() if b.kind == "serial")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.base(x)
        hook = self.delta_hook
        out = h
        for branch in self._parallel:
            if branch.active:
                delta = branch(x, h)
                if hook is not None:
                    hook(branch.uid, branch.site_index, delta.detach(), h.detach())
                out = out + delta
        if not self._serial:
            return out
        h_par = out
        for branch in self._serial:
            if branch.active:
                delta = branch(h_par)
                if hook is not None:
                    hook(branch.uid, branch.site_index, delta.detach(), h_par.detach())
                out = out + delta
        return out

    def extra_repr(self) -> str:
        active = [n for n, b in self.branches.items() if b.active]
        return f"active={active}"
