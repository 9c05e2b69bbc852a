"""Parameter accounting: THE one source of truth for budgets and reported percentages.

docs/method.md#budget: the numerator is every tensor of every ACTIVE unit (biases and DoRA's
magnitude included); the denominator is the pretrained base model (embeddings and pooler
included, the task head excluded and reported separately), counted before units were injected.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from prunepeft.peft.units import UnitId, UnitSizes, get_unit_type

if TYPE_CHECKING:
    from prunepeft.peft.supernet import Supernet


@dataclass
class ParamReport:
    """Active PEFT parameters per unit and in total, head and base counts, % of base."""

    per_unit: dict[UnitId, int]
    peft: int
    head: int
    base: int
    percent: float


def count_parameters(supernet: Supernet) -> ParamReport:
    """Count the supernet's active units, its head and its base model (see module docstring)."""
    # Branch.param_count: every tensor, minus the ranks masked out by rank-level pruning.
    per_unit = {uid: sum(b.param_count() for _, b in supernet.branches(uid)) for uid in supernet.active_ids()}
    peft = sum(per_unit.values())
    head = sum(p.numel() for p in supernet.head_parameters())
    base = int(supernet.base_params)
    return ParamReport(per_unit=per_unit, peft=peft, head=head, base=base, percent=percent_of(peft, base))


def percent_of(params: int, base: int) -> float:
    """100 · params / base (the paper's "% of backbone")."""
    return 100.0 * params / base if base else float("nan")


def unit_param_count(
    unit_type: str,
    hidden: int,
    sizes: UnitSizes,
    site_dims: Mapping[str, tuple[int, int]] | None = None,
) -> int:
    """Closed-form parameter count of one unit.

    LoRA: r·(in+out) per site; DoRA: + out (magnitude) per site; adapter: 2·h·b + b + h;
    houlsby: two adapters. Per-site sizes (`sizes.site_sizes`, rank pruning) count site by site;
    a site at size 0 costs nothing (its fixed part leaves with it).

    Args:
        unit_type: registry name (lora, dora, adapter, houlsby).
        hidden: model width, used for every site not in `site_dims`.
        sizes: rank / bottleneck width.
        site_dims: optional (in_features, out_features) per site, e.g. a grouped-query `value`
            projection of a decoder (out = kv heads · head dim).
    """
    t = get_unit_type(unit_type)
    dims = dict(site_dims or {})
    return sum(t.site_param_count(*dims.get(site, (hidden, hidden)), sizes, site) for site in t.sites)
