"""The registry of PEFT unit types (docs/method.md#supernet-and-units), in one fixed order.

Shaped like `prunepeft/pruning/criteria/`: adding a unit type is one file in this package (a
`UnitType` subclass with its size-settings dataclass) plus, when it brings new size settings, one
YAML beside it with their defaults (`lora.yaml`), plus one line in the tuple below. The order is the
order of the types in messages and of a supernet's layout when it is built without an explicit
search space. A unit type defined elsewhere (a plug-in, a test) is added with `register_unit_type`,
its YAML then composed into `model` like the built-ins'. Ids, sizes and the base class live in
`base.py` (re-exported here), so the type modules never import this registry module.
"""
from __future__ import annotations

from dataclasses import fields

from prunepeft.config.extensions import add_settings_file, remove_settings_file, yaml_beside
from prunepeft.errors import choice_error
from prunepeft.peft.units.adapter import ACTIVATIONS, AdapterType
from prunepeft.peft.units.base import REGISTRY, UnitId, UnitSizes, UnitType, parse_unit_key, unit_key
from prunepeft.peft.units.dora import DoraType
from prunepeft.peft.units.houlsby import HoulsbyType
from prunepeft.peft.units.lora import LoraType

BUILT_INS: tuple[UnitType, ...] = (LoraType(), DoraType(), AdapterType(), HoulsbyType())
# name -> unit type: the built-ins in the order above, then those added with `register_unit_type`.
UNIT_TYPES: dict[str, UnitType] = REGISTRY


def register_unit_type(unit_type: UnitType) -> UnitType:
    """Add `unit_type` after those registered so far; its settings' YAML becomes part of `model`.

    Raises:
        ValueError: no name, the name is taken, or a size setting's name belongs to another
            type's settings.
    """
    name = getattr(unit_type, "name", "")
    if not name or name in UNIT_TYPES:
        raise ValueError(f"cannot register unit type {name!r}: empty or already registered")
    own = unit_type.settings
    for other in UNIT_TYPES.values():
        if own is not None and other.settings is not None and other.settings is not own:
            shared = {f.name for f in fields(own)} & {f.name for f in fields(other.settings)}
            if shared:
                raise ValueError(f"unit type {name!r}: setting {sorted(shared)[0]!r} belongs to {other.name!r}")
    path = yaml_beside(own) if own is not None else None
    if path is not None:
        add_settings_file("unit", name, path)
    UNIT_TYPES[name] = unit_type
    return unit_type


def unregister_unit_type(name: str) -> None:
    """Remove a unit type added with `register_unit_type` (the built-ins stay)."""
    if name in {t.name for t in BUILT_INS}:
        raise ValueError(f"unit type {name!r} is built in")
    UNIT_TYPES.pop(name, None)
    remove_settings_file("unit", name)


for _unit_type in BUILT_INS:
    register_unit_type(_unit_type)


def get_unit_type(name: str) -> UnitType:
    """Look up a unit type by its config name.

    Raises:
        UserError: naming the unknown type and the valid choices.
    """
    if name not in UNIT_TYPES:
        raise choice_error("PEFT unit type", name, UNIT_TYPES)
    return UNIT_TYPES[name]


__all__ = ["ACTIVATIONS", "BUILT_INS", "UNIT_TYPES", "UnitId", "UnitSizes", "UnitType", "get_unit_type", "parse_unit_key",
           "register_unit_type", "unit_key", "unregister_unit_type"]
