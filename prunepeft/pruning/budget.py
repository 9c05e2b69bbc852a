"""The trainable-parameter budget B (docs/method.md#budget).

Numerator: every tensor of every active unit (prunepeft.peft.accounting is the one source of truth).
Denominator: the pretrained base model's parameters, embeddings and pooler included, head excluded.
"""
from __future__ import annotations

from collections.abc import Mapping

from prunepeft.errors import UserError


def budget_params(percent: float | None, params: int | None, base_params: int) -> int:
    """B in parameters: `params` when given, else `percent` % of the base model.

    Args:
        percent: budget as a percentage of the base model (0.75 means 0.75 %).
        params: absolute budget; wins over `percent` when both are set.
        base_params: parameters of the pretrained base model (head excluded).
    """
    if params is not None:
        if params <= 0:
            raise UserError(f"budget.params must be positive, got {params}")
        return int(params)
    if percent is None:
        raise UserError("no budget: set budget.percent=<% of the base model> or budget.params=<count>")
    if not 0 < percent <= 100:
        raise UserError(f"budget.percent must be in (0, 100], got {percent}")
    return int(percent / 100.0 * base_params)


def _size_keys(unit_params: Mapping[object, int]) -> list[str]:
    """`model.<size setting>` of each unit type in `unit_params` ((layer, type) keys), e.g. model.lora_r."""
    from prunepeft.peft.units import UNIT_TYPES

    types = {uid[1] for uid in unit_params if isinstance(uid, tuple) and len(uid) == 2}
    return sorted({f"model.{UNIT_TYPES[t].size_field}" for t in types if t in UNIT_TYPES}) or ["model.<size setting>"]


def check_budget(budget: int, unit_params: Mapping[object, int]) -> bool:
    """Validate B against the supernet; return True when there is something to prune.

    A budget below the smallest unit could only be met by removing every unit: that is almost
    certainly a typo (e.g. `budget.percent=0.0075` meant as 0.75 %), so it is an error.
    """
    if not unit_params:
        raise UserError("the search space is empty: set search_space=[lora, adapter] (or others)")
    smallest = min(unit_params.values())
    if budget < smallest:
        raise UserError(
            f"budget of {budget:,} parameters is below the smallest unit ({smallest:,} parameters); "
            f"raise budget.percent / budget.params or use smaller units ({', '.join(_size_keys(unit_params))})"
        )
    return sum(unit_params.values()) > budget
