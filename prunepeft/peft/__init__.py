"""PEFT units (LoRA, DoRA, adapters), the supernet that holds them, accounting, sizing, export."""
from prunepeft.peft.units import (
    UNIT_TYPES,
    UnitId,
    UnitSizes,
    UnitType,
    get_unit_type,
    parse_unit_key,
    unit_key,
)
from prunepeft.peft.supernet import Supernet
from prunepeft.peft.accounting import ParamReport, count_parameters, unit_param_count
from prunepeft.peft.sizing import uniform_size_for_budget
from prunepeft.peft.found_config import FoundConfig, build_from_found

__all__ = [
    "UNIT_TYPES",
    "FoundConfig",
    "ParamReport",
    "Supernet",
    "UnitId",
    "UnitSizes",
    "UnitType",
    "build_from_found",
    "count_parameters",
    "get_unit_type",
    "parse_unit_key",
    "uniform_size_for_budget",
    "unit_key",
    "unit_param_count",
]
