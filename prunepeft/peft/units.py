"""The registry of PEFT unit types (docs/method.md#supernet-and-units), in one fixed order.

Adding a unit type is one file (a `UnitType` subclass next to `lora.py`) plus one line in the
tuple below. The order is the order of the types in messages and of a supernet's layout when it is
built without an explicit search space. Ids, sizes and the base class live in `unit_base.py`
(re-exported here), so the type modules never import this registry.
"""
from __future__ import annotations

from prunepeft.errors import choice_error
from prunepeft.peft.adapter import AdapterType
from prunepeft.peft.dora import DoraType
from prunepeft.peft.houlsby import HoulsbyType
from prunepeft.peft.lora import LoraType
from prunepeft.peft.unit_base import ACTIVATIONS, UnitId, UnitSizes, UnitType, parse_unit_key, unit_key

UNIT_TYPES: dict[str, UnitType] = {t.name: t for t in (LoraType(), DoraType(), AdapterType(), HoulsbyType())}


def get_unit_type(name: str) -> UnitType:
    """Look up a unit type by its config name.

    Raises:
        UserError: naming the unknown type and the valid choices.
    """
    if name not in UNIT_TYPES:
        raise choice_error("PEFT unit type", name, UNIT_TYPES)
    return UNIT_TYPES[name]


__all__ = ["ACTIVATIONS", "UNIT_TYPES", "UnitId", "UnitSizes", "UnitType", "get_unit_type", "parse_unit_key", "unit_key"]
