"""Extensions found from outside the package: Python entry points, loaded once before a config is composed.

A package adds a criterion, a unit type, a model family, an assignment rule, a combination rule or
an arm by declaring an entry point in one of the groups below (in its pyproject.toml:
`[project.entry-points."prunepeft.criteria"] mine = "my_pkg.module:MyCriterion"`). The loaded object
is registered like a built-in through the registry's public function; a criterion's or unit type's
YAML beside its module is then composed like a built-in's (`config/extensions.py`), so
`prunepeft search search.criteria=[weight,mine] search.mine.scale=2` works from the command line.

This module also registers the built-in arms (importing `prunepeft.arms`). It sits above the method,
the arms and the instruments, and below the API and the commands, which call `load()`.
"""
from __future__ import annotations

import inspect
import logging
from importlib.metadata import entry_points
from typing import Any, Callable

log = logging.getLogger(__name__)

_loaded = False


def _instance(obj: Any) -> Any:
    return obj() if inspect.isclass(obj) else obj


def _criterion(name: str, obj: Any) -> None:
    from prunepeft.pruning.criteria import CRITERIA, register_criterion

    criterion = _instance(obj)
    if criterion.name not in CRITERIA:
        register_criterion(criterion)


def _unit_type(name: str, obj: Any) -> None:
    from prunepeft.peft.units import UNIT_TYPES, register_unit_type

    unit_type = _instance(obj)
    if unit_type.name not in UNIT_TYPES:
        register_unit_type(unit_type)


def _family(name: str, obj: Any) -> None:
    from prunepeft.models.families import register_family

    register_family(name, obj)


def _assign_rule(name: str, obj: Any) -> None:
    from prunepeft.pruning.assign_rules import register_assign_rule

    register_assign_rule(name, obj)


def _combination(name: str, obj: Any) -> None:
    from prunepeft.pruning.combine import register_combination

    register_combination(name, obj)


def _arm(name: str, obj: Any) -> None:
    from prunepeft.pruning.arms import register_arm

    register_arm(_instance(obj))


GROUPS: dict[str, Callable[[str, Any], None]] = {
    "prunepeft.criteria": _criterion,
    "prunepeft.unit_types": _unit_type,
    "prunepeft.families": _family,
    "prunepeft.assign_rules": _assign_rule,
    "prunepeft.combinations": _combination,
    "prunepeft.arms": _arm,
}


def load() -> None:
    """Register the built-in arms and every installed plug-in (once per process)."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    import prunepeft.arms  # noqa: F401 - registers the built-in arms

    for group, register in GROUPS.items():
        for ep in entry_points(group=group):
            register(ep.name, ep.load())
            log.debug("plug-in %s = %s (%s)", ep.name, ep.value, group)
