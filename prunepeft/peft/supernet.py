"""The supernet: every candidate unit injected into every layer (Algorithm 1; docs/method.md#supernet-and-units).

Units are identified as `(layer, type)`. Each site Linear is replaced by ONE `PeftLinear` holding
the branches of all units attached to it. The backbone is frozen; the task head is trainable.
Deactivating a unit skips its branches in the forward pass and freezes its parameters, so it
costs no compute and never reaches an optimizer (`peft_parameters()` lists active units only).
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass

import torch
from torch import nn

from prunepeft.errors import UserError, check_choice
from prunepeft.models.families import (
    Family,
    base_model_parameter_count,
    head_parameters,
    set_site_linear,
    site_linear,
    transformer_layers,
)
from prunepeft.peft.units import UNIT_TYPES, UnitId, UnitSizes, UnitType, get_unit_type, unit_key
from prunepeft.peft.wrapper import INIT_SCHEMES, Branch, PeftLinear, init_normal

REINIT_SCHEMES = (*INIT_SCHEMES, "keep")


@dataclass
class _Unit:
    uid: UnitId
    type: UnitType
    sizes: UnitSizes
    branches: list[tuple[str, Branch]]  # (site, branch), in the type's site order
    active: bool = True


class Supernet:
    """A backbone with PEFT units injected; see the module docstring."""

    def __init__(self, model: nn.Module, family: Family, hidden_size: int, search_space: list[str]) -> None:
        """Wrap `model` (not yet injected): freeze the backbone, unfreeze the head, count the base."""
        self.model = model
        self.family = family
        self.hidden_size = int(hidden_size)
        self.search_space = _check_space(search_space)
        self.layers = transformer_layers(model, family)
        self.num_layers = len(self.layers)
        for layer in self.layers:
            if any(isinstance(m, PeftLinear) for m in layer.modules()):
                raise ValueError("model already has PEFT units injected; build from a fresh backbone")
        # Budget denominator (docs/method.md#budget): counted before any unit exists.
        self.base_params = base_model_parameter_count(model, family)
        for p in model.parameters():
            p.requires_grad_(False)
        for p in self.head_parameters():
            p.requires_grad_(True)
        self._units: dict[UnitId, _Unit] = {}
        self._hook: Callable[[UnitId, int, torch.Tensor], None] | None = None

    # ---------------------------------------------------------------- construction
    @classmethod
    def build(
        cls, model: nn.Module, family: Family, search_space: list[str], sizes: UnitSizes, hidden_size: int
    ) -> Supernet:
        """Inject every type of `search_space` into every layer, `standard` init (torch's global RNG)."""
        sizes.validate()
        net = cls(model, family, hidden_size, search_space)
        for layer in range(net.num_layers):
            for name in net.search_space:
                net._add_unit((layer, name), sizes)
        net.reinit(net.unit_ids(), "standard", None)
        return net

    @classmethod
    def from_units(
        cls,
        model: nn.Module,
        family: Family,
        units: Mapping[UnitId, UnitSizes],
        hidden_size: int,
        search_space: list[str] | None = None,
        scheme: str = "standard",
        generator: torch.Generator | None = None,
    ) -> Supernet:
        """Inject only `units` (each with its own sizes), freshly initialised with `scheme`."""
        check_choice("init scheme", scheme, INIT_SCHEMES)  # fresh units have no weights to `keep`
        space = search_space or sorted({name for _, name in units}, key=_registry_order)
        net = cls(model, family, hidden_size, space)
        for uid in sorted(units, key=net._order):
            if uid[1] not in net.search_space:
                raise UserError(f"unit {unit_key(uid)} is not in the search space {net.search_space}")
            if not 0 <= uid[0] < net.num_layers:
                raise UserError(f"unit {unit_key(uid)}: the model has {net.num_layers} layers (0..{net.num_layers - 1})")
            units[uid].validate()
            net._add_unit(uid, units[uid])
        net.reinit(net.unit_ids(), scheme, generator)
        return net

    def _add_unit(self, uid: UnitId, sizes: UnitSizes) -> None:
        layer_idx, name = uid
        unit_type = get_unit_type(name)
        layer = self.layers[layer_idx]
        branches = []
        for index, site in enumerate(unit_type.sites):
            if unit_type.site_size(sizes, site) == 0:
                continue  # rank pruning emptied this site: no branch (its sibling site stays)
            wrapper = site_linear(layer, self.family, site)
            if not isinstance(wrapper, PeftLinear):
                if not isinstance(wrapper, nn.Linear):
                    raise UserError(f"site {site!r} of layer {layer_idx} is a {type(wrapper).__name__}, not nn.Linear")
                wrapper = PeftLinear(wrapper)
                wrapper.delta_hook = self._hook
                set_site_linear(layer, self.family, site, wrapper)
            branch = unit_type.make_branch(wrapper.base, sizes, site)
            branch.uid, branch.site_index = uid, index
            wrapper.add_branch(name, branch)
            branches.append((site, branch))
        self._units[uid] = _Unit(uid, unit_type, sizes, branches)

    # ---------------------------------------------------------------- which units
    def _order(self, uid: UnitId) -> tuple[int, int]:
        return uid[0], self.search_space.index(uid[1])

    def _unit(self, uid: UnitId) -> _Unit:
        uid = (int(uid[0]), str(uid[1]))
        if uid not in self._units:
            raise KeyError(f"no unit {unit_key(uid)} in this supernet")
        return self._units[uid]

    def unit_ids(self) -> list[UnitId]:
        """Every injected unit, sorted by (layer, search-space order)."""
        return sorted(self._units, key=self._order)

    def active_ids(self) -> list[UnitId]:
        """Active units, sorted by (layer, search-space order)."""
        return [uid for uid in self.unit_ids() if self._units[uid].active]

    def is_active(self, uid: UnitId) -> bool:
        return self._unit(uid).active

    def deactivate(self, uid: UnitId) -> None:
        """Prune a unit: its branches stop computing and its parameters stop training."""
        unit = self._unit(uid)
        unit.active = False
        for _, branch in unit.branches:
            branch.active = False
            for p in branch.parameters():
                p.requires_grad_(False)
                p.grad = None

    def activate(self, uid: UnitId) -> None:
        """Undo `deactivate` (used to fill the budget back after the last removal)."""
        unit = self._unit(uid)
        unit.active = True
        for _, branch in unit.branches:
            branch.active = True
            for p in branch.parameters():
                p.requires_grad_(True)

    @contextlib.contextmanager
    def masked(self, uids: Iterable[UnitId]) -> Iterator[None]:
        """Skip the branches of `uids` in the forward pass inside the block, then restore them.

        Non-destructive (unlike `deactivate`): parameters, requires_grad and the active set are
        untouched, so diagnostics can mask units without changing what the search does next.
        """
        branches = [b for uid in uids for _, b in self._unit(uid).branches if b.active]
        for b in branches:
            b.active = False
        try:
            yield
        finally:
            for b in branches:
                b.active = True

    def unit_type(self, uid: UnitId) -> UnitType:
        return self._unit(uid).type

    def unit_sizes(self, uid: UnitId) -> UnitSizes:
        """The unit's sizes; after rank pruning, `site_sizes` holds the ranks each site kept."""
        unit = self._unit(uid)
        kept = {site: b.kept_ranks() for site, b in unit.branches}
        now = {site: kept.get(site, 0) for site in unit.type.sites}
        if now == {site: unit.type.site_size(unit.sizes, site) for site in unit.type.sites}:
            return unit.sizes
        return unit.sizes.replace(site_sizes=now)

    def branches(self, uid: UnitId) -> list[tuple[str, Branch]]:
        """(site, branch) pairs of a unit, in the type's site order (site_index order)."""
        return list(self._unit(uid).branches)

    # ---------------------------------------------------------------- parameters
    def unit_parameters(self, uid: UnitId) -> dict[str, nn.Parameter]:
        """Every tensor of the unit (biases and DoRA magnitude included), named `<site>.<param>`."""
        return {f"{site}.{n}": p for site, b in self._unit(uid).branches for n, p in b.named_parameters()}

    def criterion_parameters(self, uid: UnitId) -> list[nn.Parameter]:
        """The unit's weight matrices: no biases, no DoRA magnitude (see `Branch.criterion_parameters`)."""
        return [p for _, b in self._unit(uid).branches for p in b.criterion_parameters()]

    def peft_parameters(self) -> list[nn.Parameter]:
        """Parameters of active units only (what the optimizer trains and the budget counts)."""
        return [p for uid in self.active_ids() for p in self.unit_parameters(uid).values()]

    def head_parameters(self) -> list[nn.Parameter]:
        return [p for _, p in head_parameters(self.model, self.family)]

    # ---------------------------------------------------------------- re-initialisation
    def reinit(self, uids: Iterable[UnitId], scheme: str, generator: torch.Generator | None) -> None:
        """Re-initialise units in place: `paper` (Eq. 4-5), `standard`, or `keep` (no-op).

        Units are visited in (layer, search-space order) so a seeded generator gives the same
        weights whatever order `uids` comes in.
        """
        check_choice("re-initialisation scheme", scheme, REINIT_SCHEMES)
        if scheme == "keep":
            return
        for uid in sorted((self._unit(u).uid for u in uids), key=self._order):
            for _, branch in self._units[uid].branches:
                branch.reset(scheme, generator, self.hidden_size)

    def reinit_head(self, generator: torch.Generator | None) -> None:
        """Fresh head as HF initialises it: weights N(0, initializer_range), biases 0."""
        std = float(getattr(getattr(self.model, "config", None), "initializer_range", 0.02))
        for name, p in head_parameters(self.model, self.family):
            if p.dim() >= 2:
                init_normal(p, std, generator)
            else:
                with torch.no_grad():
                    p.fill_(1.0 if name.endswith("weight") else 0.0)  # norm scales 1, biases 0

    # ---------------------------------------------------------------- hooks
    def set_delta_hook(self, fn: Callable[[UnitId, int, torch.Tensor, torch.Tensor], None] | None) -> None:
        """Call `fn(uid, site_index, delta, base)` from every ACTIVE branch's forward (None removes it)."""
        self._hook = fn
        for module in self.model.modules():
            if isinstance(module, PeftLinear):
                module.delta_hook = fn

    # ---------------------------------------------------------------- save / load
    # The unit tensors only; files and the head: prunepeft.peft.weights (the one way to save them).
    def state_dict_units(self) -> dict[str, torch.Tensor]:
        """Active units' tensors as `"<layer>:<type>.<site>.<param>"` -> CPU copy."""
        return {
            f"{unit_key(uid)}.{name}": p.detach().cpu().clone()
            for uid in self.active_ids()
            for name, p in self.unit_parameters(uid).items()
        }

    def load_state_dict_units(self, sd: Mapping[str, torch.Tensor]) -> None:
        """Load tensors saved by `state_dict_units`; keys must match the active units exactly."""
        expected = {f"{unit_key(uid)}.{n}": p for uid in self.active_ids() for n, p in self.unit_parameters(uid).items()}
        missing, unexpected = sorted(set(expected) - set(sd)), sorted(set(sd) - set(expected))
        if missing or unexpected:
            raise UserError(
                f"unit weights do not match the active units: missing {missing[:6]}, unexpected {unexpected[:6]}"
            )
        for key, tensor in sd.items():
            _copy(expected[key], tensor, key)


def _copy(param: nn.Parameter, tensor: torch.Tensor, key: str) -> None:
    if tuple(param.shape) != tuple(tensor.shape):
        raise UserError(f"weight {key!r} has shape {tuple(tensor.shape)}, expected {tuple(param.shape)}")
    with torch.no_grad():
        param.copy_(tensor.to(param.device, param.dtype))


def _registry_order(name: str) -> int:
    return list(UNIT_TYPES).index(name) if name in UNIT_TYPES else len(UNIT_TYPES)


def _check_space(search_space: Iterable[str]) -> list[str]:
    space = [str(s) for s in search_space]
    if not space:
        raise UserError(f"search_space is empty; choose unit types from: {', '.join(sorted(UNIT_TYPES))}")
    for name in space:
        get_unit_type(name)
    if len(set(space)) != len(space):
        raise UserError(f"search_space lists a unit type twice: {space}")
    return space
