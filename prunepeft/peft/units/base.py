"""Unit ids, unit sizes and the UnitType base class (docs/method.md#supernet-and-units).

A *unit* is one module type at one layer, the thing PrunePEFT keeps or prunes. Its id is
`(layer, type)`, e.g. `(3, "lora")`, written `"3:lora"` in JSON. A unit type says where its
branches attach (`sites`), whether they run in parallel with the site's Linear (LoRA, DoRA) or
after it (adapters), how to build one branch, and its closed-form parameter count.

The bottom of `prunepeft.peft`: it imports no unit type. The registry (`units/__init__.py`) imports
the types, and the types import this module, so the import graph has no circle.
"""
from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any, ClassVar, Optional

from torch import nn

from prunepeft.errors import UserError, choice_error

UnitId = tuple[int, str]

# Adapter activations by config name (validated with the sizes; `adapter.make_activation` builds one).
ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "swish": nn.SiLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "identity": nn.Identity,
}


def unit_key(uid: UnitId) -> str:
    """`(3, "lora")` -> `"3:lora"` (the form used in JSON files)."""
    layer, name = uid
    return f"{int(layer)}:{name}"


def parse_unit_key(key: str) -> UnitId:
    """`"3:lora"` -> `(3, "lora")`.

    Raises:
        UserError: when `key` is not `<layer>:<type>`.
    """
    layer, sep, name = str(key).partition(":")
    if not sep or not name or not layer.strip().lstrip("-").isdigit():
        raise UserError(f"bad unit key {key!r}; expected '<layer>:<type>', e.g. '3:lora'")
    return int(layer), name


@dataclass
class UnitSizes:
    """Sizes of PEFT units (per-model config keys, docs/method.md#sizes).

    `lora_*` apply to lora and dora; `adapter_*` to adapter and houlsby.
    """

    lora_r: int = 8
    lora_alpha: float = 16.0
    lora_dropout: float = 0.0
    adapter_bottleneck: int = 64
    adapter_activation: str = "relu"
    # Per-site rank / bottleneck width after rank-level pruning, e.g. {"query": 3, "value": 5}
    # (None: every site at the uniform size). A site at 0 has no branch. LoRA keeps the scaling
    # lora_alpha / lora_r of the unpruned rank (docs/method.md, "Rank-level pruning").
    site_sizes: Optional[dict[str, int]] = None

    @classmethod
    def from_model(
        cls, model_cfg: Any, lora_r: int | None = None, adapter_bottleneck: int | None = None
    ) -> UnitSizes:
        """Sizes from a ModelConfig, with optional overrides of the rank / bottleneck width.

        An overridden rank keeps the model's `lora_alpha` (peft's semantics: scale = alpha / r).
        """
        defaults = cls()
        kw = {f.name: getattr(model_cfg, f.name, getattr(defaults, f.name)) for f in fields(cls)}
        if lora_r is not None:
            kw["lora_r"] = lora_r
        if adapter_bottleneck is not None:
            kw["adapter_bottleneck"] = adapter_bottleneck
        sizes = cls(
            lora_r=int(kw["lora_r"]),
            lora_alpha=float(kw["lora_alpha"]),
            lora_dropout=float(kw["lora_dropout"]),
            adapter_bottleneck=int(kw["adapter_bottleneck"]),
            adapter_activation=str(kw["adapter_activation"]),
        )
        sizes.validate()
        return sizes

    def validate(self) -> None:
        """Raise UserError on a non-positive rank/width or an unknown activation."""
        if self.lora_r < 1:
            raise UserError(f"lora_r must be >= 1, got {self.lora_r}")
        if self.adapter_bottleneck < 1:
            raise UserError(f"adapter_bottleneck must be >= 1, got {self.adapter_bottleneck}")
        if self.site_sizes is not None:
            bad = {k: v for k, v in self.site_sizes.items() if not isinstance(v, int) or v < 0}
            if bad or not any(self.site_sizes.values()):
                raise UserError(f"site_sizes must be integers >= 0 with at least one > 0, got {self.site_sizes}")
        if not 0.0 <= self.lora_dropout < 1.0:
            raise UserError(f"lora_dropout must be in [0, 1), got {self.lora_dropout}")
        if self.adapter_activation not in ACTIVATIONS:
            raise choice_error("adapter activation", self.adapter_activation, ACTIVATIONS)



class UnitType:
    """A PEFT unit type: where it attaches and how to build / count one branch per site.

    Subclasses set `name`, `kind` ("parallel" adds to the site output from the site input;
    "serial" transforms the site output), `sites`, `size_field` (the UnitSizes knob that
    `sizing` scales) and `json_fields` (the UnitSizes fields recorded in found_config.json).
    """

    name: ClassVar[str]
    kind: ClassVar[str]
    sites: ClassVar[tuple[str, ...]]
    size_field: ClassVar[str]
    json_fields: ClassVar[tuple[str, ...]]

    def make_branch(self, linear: nn.Linear, sizes: UnitSizes, site: str | None = None) -> nn.Module:
        """Build this unit's branch for one site Linear (weights on its device)."""
        raise NotImplementedError

    def site_param_count(self, in_features: int, out_features: int, sizes: UnitSizes, site: str | None = None) -> int:
        """Closed-form parameter count of one branch on a Linear `in_features -> out_features`."""
        raise NotImplementedError

    def site_size(self, sizes: UnitSizes, site: str | None) -> int:
        """The rank / bottleneck width at `site` (`sizes.site_sizes` after rank pruning)."""
        uniform = int(getattr(sizes, self.size_field))
        if site is None or sizes.site_sizes is None:
            return uniform
        if site not in self.sites:
            raise UserError(f"{self.name} has no site {site!r}; its sites are {list(self.sites)}")
        return int(sizes.site_sizes.get(site, uniform))

    def sizes_json(self, sizes: UnitSizes) -> dict[str, Any]:
        """The sizes this type uses, for found_config.json (+ `site_sizes` after rank pruning)."""
        out = {f: getattr(sizes, f) for f in self.json_fields}
        if sizes.site_sizes is not None:
            out["site_sizes"] = {site: self.site_size(sizes, site) for site in self.sites}
        return out

    def with_size(self, sizes: UnitSizes, size: int) -> UnitSizes:
        """A copy of `sizes` with this type's size knob (rank or bottleneck width) set to `size`."""
        return replace(sizes, **{self.size_field: int(size)})

    def own_sizes(self, sizes: UnitSizes) -> UnitSizes:
        """`sizes` with the fields this type does not use reset to defaults (a canonical form)."""
        return UnitSizes(**self.sizes_json(sizes))
