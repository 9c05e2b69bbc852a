"""Unit ids, unit sizes and the UnitType base class (docs/method.md#supernet-and-units).

A *unit* is one module type at one layer, the thing PrunePEFT keeps or prunes. Its id is
`(layer, type)`, e.g. `(3, "lora")`, written `"3:lora"` in JSON. A unit type says where its
branches attach (`sites`), whether they run in parallel with the site's Linear (LoRA, DoRA) or
after it (adapters), how to build one branch, and its closed-form parameter count.

The bottom of `prunepeft.peft`: it imports no unit type. The registry (`units/__init__.py`) imports
the types, and the types import this module, so the import graph has no circle.
"""
from __future__ import annotations

from dataclasses import fields
from typing import Any, ClassVar, Optional

from torch import nn

from prunepeft.errors import UserError

UnitId = tuple[int, str]

# The registered unit types by name, in registry order: filled by `units/__init__.py` (the built-ins
# in one explicit tuple, then `register_unit_type`). It lives here so that `UnitSizes` can find each
# type's settings class without importing the registry module.
REGISTRY: dict[str, "UnitType"] = {}


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


def settings_classes() -> list[type]:
    """The size-settings dataclasses of the registered unit types, each once, in registry order."""
    out: list[type] = []
    for unit_type in REGISTRY.values():
        if unit_type.settings is not None and unit_type.settings not in out:
            out.append(unit_type.settings)
    return out


def _defaults() -> dict[str, Any]:
    return {f.name: getattr(cls(), f.name) for cls in settings_classes() for f in fields(cls)}


class UnitSizes:
    """The size settings of every registered unit type, by name, plus the per-site sizes.

    Each unit type owns its settings (a frozen dataclass next to it, e.g. `units/lora.py:
    LoraSettings` with `lora_r`, `lora_alpha`, `lora_dropout`; defaults in its YAML, config keys
    `model.<name>`, docs/method.md#sizes); this object holds the values of all of them, read as
    attributes (`sizes.lora_r`), so one object sizes a whole supernet. `UnitSizes(lora_r=4)` takes
    the other settings' defaults; an unknown name is a TypeError, as for a dataclass.

    `site_sizes`: the per-site rank / bottleneck width after rank-level pruning, e.g.
    {"query": 3, "value": 5} (None: every site at the uniform size). A site at 0 has no branch.
    LoRA keeps the scaling lora_alpha / lora_r of the unpruned rank (docs/method.md, "Rank-level
    pruning").
    """

    __slots__ = ("_values", "site_sizes")
    __hash__ = None  # mutable, like the dataclass it replaces

    def __init__(self, *, site_sizes: Optional[dict[str, int]] = None, **values: Any) -> None:
        defaults = _defaults()
        unknown = sorted(set(values) - set(defaults))
        if unknown:
            raise TypeError(f"UnitSizes() got an unexpected keyword argument {unknown[0]!r}")
        object.__setattr__(self, "_values", {**defaults, **values})
        object.__setattr__(self, "site_sizes", site_sizes)

    def __getattr__(self, name: str) -> Any:
        values = _slot(self)
        if values is not None and name in values:
            return values[name]
        raise AttributeError(f"UnitSizes has no setting {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "site_sizes":
            object.__setattr__(self, name, value)
        elif name in self._values:
            self._values[name] = value
        else:
            raise AttributeError(f"UnitSizes has no setting {name!r}")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, UnitSizes):
            return NotImplemented
        return self._values == other._values and self.site_sizes == other.site_sizes

    def __repr__(self) -> str:
        items = [f"{k}={v!r}" for k, v in self._values.items()] + [f"site_sizes={self.site_sizes!r}"]
        return f"UnitSizes({', '.join(items)})"

    def __getstate__(self) -> tuple:
        return dict(self._values), self.site_sizes

    def __setstate__(self, state: tuple) -> None:
        object.__setattr__(self, "_values", dict(state[0]))
        object.__setattr__(self, "site_sizes", state[1])

    @staticmethod
    def names() -> list[str]:
        """The setting names of the registered unit types (`lora_r`, ..., `adapter_activation`, ...)."""
        return list(_defaults())

    def as_dict(self) -> dict[str, Any]:
        """{setting: value} (without `site_sizes`)."""
        return dict(self._values)

    def replace(self, **changes: Any) -> UnitSizes:
        """A copy with `changes` (settings and/or `site_sizes`)."""
        site_sizes = changes.pop("site_sizes", self.site_sizes)
        return UnitSizes(site_sizes=site_sizes, **{**self._values, **changes})

    @classmethod
    def from_model(cls, model_cfg: Any, **overrides: Any) -> UnitSizes:
        """Sizes from a model config (`model.lora_r`, ...), with overrides (`lora_r=4`; None = no override).

        Each value is converted to its default's type (a YAML `lora_alpha: 32` is 32.0). An
        overridden rank keeps the model's `lora_alpha` (peft's semantics: scale = alpha / r).

        Raises:
            UserError: a value fails its unit type's checks.
        """
        defaults = _defaults()
        kw = {name: getattr(model_cfg, name, default) for name, default in defaults.items()}
        kw.update({k: v for k, v in overrides.items() if v is not None})
        sizes = cls(**{k: _as_type_of(defaults[k], v) for k, v in kw.items()})
        sizes.validate()
        return sizes

    def validate(self) -> None:
        """Raise UserError when a value fails its unit type's checks (or on bad `site_sizes`)."""
        for settings in settings_classes():
            settings(**{f.name: self._values[f.name] for f in fields(settings)})
        if self.site_sizes is not None:
            bad = {k: v for k, v in self.site_sizes.items() if not isinstance(v, int) or v < 0}
            if bad or not any(self.site_sizes.values()):
                raise UserError(f"site_sizes must be integers >= 0 with at least one > 0, got {self.site_sizes}")


def _slot(sizes: UnitSizes) -> Optional[dict[str, Any]]:
    """The values slot, or None while unpickling (so `__getattr__` cannot recurse)."""
    try:
        return object.__getattribute__(sizes, "_values")
    except AttributeError:
        return None


def _as_type_of(default: Any, value: Any) -> Any:
    """`value` as `default`'s scalar type (int, float, str, bool); other values unchanged."""
    if value is None or default is None or isinstance(default, bool) or not isinstance(default, (int, float, str)):
        return value
    return type(default)(value)


class UnitType:
    """A PEFT unit type: where it attaches, its size settings, and how to build / count one branch per site.

    Subclasses set `name`, `kind` ("parallel" adds to the site output from the site input;
    "serial" transforms the site output), `sites`, `settings` (a frozen dataclass in the type's
    file: one field per size setting, its defaults, checks in `__post_init__` raising UserError;
    a YAML next to that file holds the same defaults for the config, see `config/extensions.py`)
    and `size_field` (the setting that `sizing` and rank pruning change: the rank or width).
    A subclass may share its parent's settings (DoRA uses LoRA's, Houlsby the adapter's).
    """

    name: ClassVar[str]
    kind: ClassVar[str]
    sites: ClassVar[tuple[str, ...]]
    settings: ClassVar[Optional[type]] = None
    size_field: ClassVar[str]

    @property
    def json_fields(self) -> tuple[str, ...]:
        """The settings recorded per unit in found_config.json (this type's settings' fields)."""
        return tuple(f.name for f in fields(self.settings)) if self.settings is not None else ()

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
        return sizes.replace(**{self.size_field: int(size)})

    def own_sizes(self, sizes: UnitSizes) -> UnitSizes:
        """`sizes` with the fields this type does not use reset to defaults (a canonical form)."""
        return UnitSizes(**self.sizes_json(sizes))
