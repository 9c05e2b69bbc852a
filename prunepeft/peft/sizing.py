"""Uniform sizes that fit a budget, for fair baselines (docs/method.md#sizes: LoRA r≈18, adapter
b≈36 on MiniLM at 0.75%): the largest rank / bottleneck width whose unit, placed in EVERY layer,
keeps the total PEFT parameters within the budget."""
from __future__ import annotations

from torch import nn

from prunepeft.errors import UserError
from prunepeft.models.families import Family, site_linear, transformer_layers
from prunepeft.peft.accounting import unit_param_count
from prunepeft.peft.units import UnitSizes, get_unit_type


def site_dims(model: nn.Module, family: Family, unit_type: str) -> list[dict[str, tuple[int, int]]]:
    """(in_features, out_features) of each of the unit type's sites, per layer."""
    sites = get_unit_type(unit_type).sites
    return [
        {s: (site_linear(layer, family, s).in_features, site_linear(layer, family, s).out_features) for s in sites}
        for layer in transformer_layers(model, family)
    ]


def uniform_total(
    model: nn.Module, family: Family, unit_type: str, size: int, hidden: int, sizes: UnitSizes | None = None
) -> int:
    """Total parameters of `unit_type` with rank / width `size` in every layer."""
    sized = get_unit_type(unit_type).with_size(sizes or UnitSizes(), size)
    return sum(unit_param_count(unit_type, hidden, sized, dims) for dims in site_dims(model, family, unit_type))


def uniform_size_for_budget(
    model: nn.Module, family: Family, unit_type: str, budget_params: int, hidden: int
) -> int:
    """Largest rank (lora, dora) or bottleneck width (adapter, houlsby) within `budget_params`.

    Raises:
        UserError: when even size 1 in every layer exceeds the budget.
    """
    total_1 = uniform_total(model, family, unit_type, 1, hidden)
    if total_1 > budget_params:
        raise UserError(
            f"budget of {int(budget_params):,} parameters is too small for a uniform {unit_type!r} "
            f"baseline: size 1 in every layer already needs {total_1:,}"
        )
    # Counts are affine in the size (see accounting.unit_param_count): total(s) = a·s + c.
    slope = uniform_total(model, family, unit_type, 2, hidden) - total_1
    size = max(1, int((budget_params - (total_1 - slope)) // slope))
    while uniform_total(model, family, unit_type, size, hidden) > budget_params:  # guard rounding
        size -= 1
    while uniform_total(model, family, unit_type, size + 1, hidden) <= budget_params:
        size += 1
    return size
