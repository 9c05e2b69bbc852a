"""The Criterion base class and the context (each criterion's settings, the seed) it may read.

Table 1 of the paper defines each criterion as a per-element mean over a unit's parameters
(1/|w| Σ ...). Here `raw` returns that value per unit and `oriented` turns it into a
*prunability* score: higher = more prunable. Importance-like statistics (weight, activation,
taylor, gradient) are negated; fraction-of-small-weights statistics are kept as they are.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any, Optional

import numpy as np
import torch

from prunepeft.errors import UserError, choice_error
from prunepeft.pruning.statistics import UnitId, UnitStatistics

Stats = Mapping[UnitId, UnitStatistics]
# How the per-type offset of a criterion is removed (docs/method.md, "Types are compared fairly").
TYPE_NORMS = ("none", "zscore")
Scores = dict[UnitId, float]


# The registered criteria by name, in registry order: filled by `criteria/__init__.py` (the
# built-ins in one explicit tuple, then `register_criterion`). It lives here so that the context
# below can find each criterion's settings class without importing the registry module.
REGISTRY: dict[str, "Criterion"] = {}


@dataclass(frozen=True, init=False)
class CriterionContext:
    """What the criteria of one scoring call may read: each criterion's own settings, a seed.

    Attributes:
        seed: drives the `random` criterion (the search passes seed + round).
        type_norm: `none`, or `zscore`: standardise the oriented scores within each unit type
            (see `scoring.remove_type_offset`) for the criteria in `type_norm_criteria`.
        type_norm_criteria: the criteria `type_norm` applies to.
        settings: {criterion name: its settings} for every registered criterion that declares a
            `settings` class (e.g. `zeros` -> ZerosSettings(rel_tol=0.1)); read with `settings_of`.

    A criterion's settings are given as `settings={"zeros": {"rel_tol": 0.2}}` (or a settings
    instance), or flat as `<criterion>_<field>=value` (`zeros_rel_tol=0.2`, `threshold_t=0.01`);
    the rest take the defaults of the criterion's settings class, which validates them.
    """

    seed: int
    type_norm: str
    type_norm_criteria: tuple[str, ...]
    settings: Mapping[str, Any]

    def __init__(self, seed: int = 0, type_norm: str = "none", type_norm_criteria: Iterable[str] = (),
                 settings: Optional[Mapping[str, Any]] = None, **flat: Any) -> None:
        given = {str(k): v for k, v in (settings or {}).items()}
        for key, value in flat.items():
            name, field_name = _split_flat(key)
            section = given.setdefault(name, {})
            if not isinstance(section, Mapping):
                section = given[name] = {f.name: getattr(section, f.name) for f in fields(section)}
            given[name] = {**section, field_name: value}
        for name in given:
            if name not in REGISTRY or REGISTRY[name].settings is None:
                with_settings = [n for n, c in REGISTRY.items() if c.settings is not None]
                raise choice_error("criterion with settings", name, with_settings)
        built = {name: _build_settings(c, given.get(name)) for name, c in REGISTRY.items() if c.settings is not None}
        object.__setattr__(self, "seed", int(seed))
        object.__setattr__(self, "type_norm", str(type_norm))
        object.__setattr__(self, "type_norm_criteria", tuple(str(c) for c in type_norm_criteria))
        object.__setattr__(self, "settings", built)
        if self.type_norm not in TYPE_NORMS:
            raise UserError(f"search.type_norm={self.type_norm!r} is not valid; choose from: {', '.join(TYPE_NORMS)}")

    def settings_of(self, criterion: "Criterion") -> Any:
        """`criterion`'s settings (its settings class's defaults when it was registered later)."""
        if criterion.name in self.settings:
            return self.settings[criterion.name]
        return _build_settings(criterion, None)

    def with_seed(self, seed: int) -> "CriterionContext":
        """The same settings with another seed: the search builds its context once (`pruning.setup`)
        and re-seeds it for every snapshot and round (the `random` criterion draws from seed + t)."""
        return CriterionContext(seed, self.type_norm, self.type_norm_criteria, settings=self.settings)

    @classmethod
    def from_search_config(cls, search: Any, seed: int) -> "CriterionContext":
        """Build from the `search` config group (SearchConfig / DictConfig) and a seed.

        A criterion's settings are read from its own section: `search.<name>` (composed from the
        criterion's YAML, e.g. `search.zeros.rel_tol`), then `search.criterion_settings.<name>` on
        top (open: `+search.criterion_settings.<name>.<field>=...`).
        """
        extra = _get(search, "criterion_settings") or {}
        settings: dict[str, dict[str, Any]] = {}
        for name in extra:
            if name not in REGISTRY or REGISTRY[name].settings is None:
                with_settings = [n for n, c in REGISTRY.items() if c.settings is not None]
                raise choice_error("search.criterion_settings entry", str(name), with_settings)
        for name, criterion in REGISTRY.items():
            if criterion.settings is None:
                continue
            known = [f.name for f in fields(criterion.settings)]
            values = _section_values(_get(search, name), known)
            given = _get(extra, name)
            if given is not None:
                unknown = sorted(str(k) for k in given if str(k) not in known)
                if unknown:
                    raise choice_error(f"search.criterion_settings.{name} key", unknown[0], known)
                values.update(_section_values(given, known))
            settings[name] = values
        return cls(seed=int(seed), type_norm=str(search.type_norm),
                   type_norm_criteria=tuple(str(c) for c in search.type_norm_criteria), settings=settings)


def _get(obj: Any, key: str) -> Any:
    """`obj[key]` of a mapping / DictConfig, `obj.key` of a dataclass; None when absent."""
    if obj is None:
        return None
    if isinstance(obj, Mapping):
        return obj.get(key)
    return getattr(obj, key, None)


def _section_values(section: Any, known: list[str]) -> dict[str, Any]:
    """The fields `known` that `section` (mapping, DictConfig or dataclass) sets."""
    if section is None:
        return {}
    if isinstance(section, Mapping):
        return {k: section[k] for k in known if k in section}
    return {k: getattr(section, k) for k in known if hasattr(section, k)}


def _split_flat(key: str) -> tuple[str, str]:
    """`zeros_rel_tol` -> ("zeros", "rel_tol"): the longest registered name with a settings field."""
    for name in sorted(REGISTRY, key=len, reverse=True):
        c = REGISTRY[name]
        if c.settings is not None and key.startswith(name + "_"):
            rest = key[len(name) + 1:]
            if rest in {f.name for f in fields(c.settings)}:
                return name, rest
    raise TypeError(f"CriterionContext() got an unexpected keyword argument {key!r}")


def _build_settings(criterion: "Criterion", given: Any) -> Any:
    """An instance of `criterion.settings` from a mapping of fields, an instance, or None."""
    cls = criterion.settings
    if isinstance(given, cls):
        return given
    return cls(**dict(given or {}))


class Criterion:
    """One pruning criterion of Table 1.

    Subclasses set `name`, `needs` (a subset of {"weights", "grad", "taylor", "activation"})
    and `higher_is_prunable`, and implement `raw`.
    """

    name: str = ""
    needs: frozenset[str] = frozenset()
    # False: a larger raw value means a more important unit, so `oriented` negates it.
    higher_is_prunable: bool = False
    # The criterion's own settings: a frozen dataclass whose fields are its config keys
    # (`search.<name>.<field>`), its defaults the defaults (repeated, for the config, in a YAML
    # beside the file that defines it: zeros.py -> zeros.yaml), and whose __post_init__ raises
    # UserError naming the key and its valid range. None: the criterion has no settings. Read
    # them in `raw` with `ctx.settings_of(self)`.
    settings: Optional[type] = None
    # A null criterion scores noise, not the unit (seeded by `ctx.seed`): it is never a candidate
    # of the warm-up assignment, and it is the diagnostics' null model.
    null: bool = False
    # Whether it joins a hybrid strategy's criteria by default (`HYBRID_CRITERIA`, the default of
    # `search.criteria`); a criterion that does not is still used when named there.
    in_default_hybrid: bool = True

    def raw(self, stats: Stats, ctx: CriterionContext) -> Scores:
        """The criterion's value per unit, as Table 1 defines it."""
        raise NotImplementedError

    def orient(self, raw: Mapping[UnitId, float]) -> Scores:
        """Map raw values to prunability scores (higher = more prunable)."""
        if self.higher_is_prunable:
            return {uid: float(v) for uid, v in raw.items()}
        return {uid: -float(v) for uid, v in raw.items()}

    def oriented(self, stats: Stats, ctx: CriterionContext) -> Scores:
        """`raw` then `orient`: higher = more prunable."""
        return self.orient(self.raw(stats, ctx))

    def __repr__(self) -> str:
        return f"<criterion {self.name}>"


def require(stat: Optional[Any], uid: UnitId, what: str, criterion: str) -> Any:
    """Return `stat`, or fail loudly when the collector was not asked for it."""
    if stat is None:
        raise ValueError(
            f"criterion {criterion!r} needs the {what!r} statistic of unit {uid}, which was not "
            f"collected (build the StatisticsCollector with needs including {what!r})"
        )
    return stat


def per_element_mean(t: torch.Tensor) -> float:
    """Table 1's 1/|w| Σ over a unit's elements (float64 accumulation for determinism)."""
    return float(t.detach().double().mean())


def pooled_abs_weights(stats: Stats) -> np.ndarray:
    """|w| of every active unit's criterion parameters, pooled (float64)."""
    if not stats:
        return np.zeros(0)
    return np.concatenate([s.weights.detach().double().abs().numpy().ravel() for s in stats.values()])
