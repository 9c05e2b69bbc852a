"""The registry of PEFT unit types (docs/method.md#supernet-and-units), in one fixed order.

Shaped like `prunepeft/pruning/criteria/`: adding a unit type is one file in this package (a
`UnitType` subclass) plus one line in the tuple below. The order is the order of the types in
messages and of a supernet's layout when it is built without an explicit search space. Ids, sizes
and the base class live in `base.py` (re-exported here), so the type modules never import this
registry module.
"""
from __future__ import annotations

from prunepeft.errors import choice_error
from prunepeft.peft.units.adapter import AdapterType
from prunepeft.peft.units.base import ACTIVATIONS, UnitId, UnitSizes, UnitType, parse_unit_key, unit_key
from prunepeft.peft.units.dora import DoraType
from prunepeft.peft.units.houlsby import HoulsbyType
from prunepeft.peft.units.lora import LoraType

BUILT_INS: tuple[UnitType, ...] = (LoraType(), DoraType(), AdapterType(), HoulsbyType())
# name -> unit type: the built-ins in the order above, then those added with `register_unit_type`.
UNIT_TYPES: dict[str, UnitType] = {t.name: t for t in BUILT_INS}


def register_unit_type(unit_type: UnitType) -> UnitType:
    """Add a unit type defined outside this package (a plug-in, a test) after the built-ins.

    Raises:
        ValueError: no name, or the name is taken.
    """
    name = getattr(unit_type, "name", "")
    if not name or name in UNIT_TYPES:
        raise ValueError(f"cannot register unit type {name!r}: empty or already registered")
    UNIT_TYPES[name] = unit_type
    return unit_type


def unregister_unit_type(name: str) -> None:
    """Remove a unit type added with `register_unit_type` (the built-ins stay)."""
    if name in {t.name for t in BUILT_INS}:
        raise ValueError(f"unit type {name!r} is built in")
    UNIT_TYPES.pop(name, None)


def get_unit_type(name: str) -> UnitType:
    """Look up a unit type by its config name.

    Raises:
        UserError: naming the unknown type and the valid choices.
    """
    if name not in UNIT_TYPES:
        raise choice_error("PEFT unit type", name, UNIT_TYPES)
    return UNIT_TYPES[name]


__all__ = ["ACTIVATIONS", "UNIT_TYPES", "UnitId", "UnitSizes", "UnitType", "get_unit_type", "parse_unit_key",
           "register_unit_type", "unit_key", "unregister_unit_type"]
