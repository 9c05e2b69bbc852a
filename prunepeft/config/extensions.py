"""The extension points' own YAMLs: where they are and where the config composes them.

A criterion with settings and a unit type with size settings each keep ONE YAML next to the Python
file that defines its settings dataclass (`pruning/criteria/zeros.yaml` next to `zeros.py`,
`peft/units/lora.yaml` next to `lora.py`): the defaults a user reads and overrides. The schema
(`schema.py`) adds each YAML's keys to the typed config, so they appear in `--cfg job` and in
run.json like any other key:

- a criterion's under `search.<criterion name>` (`search.zeros.rel_tol`);
- a unit type's flat under `model` (`model.lora_r`): unit sizes are per backbone, and a model YAML
  in `conf/model/` overrides them.

The built-ins are found by their folder (file stem = criterion name). An extension defined
elsewhere is added by `register_criterion` / `register_unit_type`, which call `add_settings_file`
(docs/architecture.md, "Where to add things"). This module imports nothing of the package, so
both `config` and the registries may use it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

PACKAGE = Path(__file__).resolve().parents[1]
# kind -> the folder of the built-ins' YAMLs (the registries' own packages).
BUILT_IN_FOLDERS = {"criterion": PACKAGE / "pruning" / "criteria", "unit": PACKAGE / "peft" / "units"}
# kind -> {name: YAML} of the extensions registered from outside the package, in registration order.
_ADDED: dict[str, dict[str, Path]] = {kind: {} for kind in BUILT_IN_FOLDERS}


def settings_files(kind: str) -> dict[str, Path]:
    """{name: YAML} of `kind` ("criterion" or "unit"): the built-ins (sorted), then the added ones."""
    built_in = {p.stem: p for p in sorted(BUILT_IN_FOLDERS[kind].glob("*.yaml"))}
    return {**built_in, **_ADDED[kind]}


def add_settings_file(kind: str, name: str, path: str | Path) -> None:
    """Compose `path` into the config as the settings of extension `name` (a no-op for a built-in's own YAML).

    Raises:
        ValueError: `path` does not exist, or another YAML is registered under `name`.
    """
    path = Path(path).resolve()
    if not path.is_file():
        raise ValueError(f"{kind} {name!r}: settings file {str(path)!r} does not exist")
    known = settings_files(kind).get(name)
    if known is not None and known.resolve() != path:
        raise ValueError(f"{kind} {name!r} already has the settings file {str(known)!r}")
    if path.parent != BUILT_IN_FOLDERS[kind]:
        _ADDED[kind][name] = path


def remove_settings_file(kind: str, name: str) -> None:
    """Undo `add_settings_file` (the built-ins' YAMLs stay)."""
    _ADDED[kind].pop(name, None)


def yaml_beside(settings_class: type) -> Path | None:
    """The YAML next to the file that defines `settings_class` (`lora.py` -> `lora.yaml`), if any."""
    import inspect

    path = Path(inspect.getfile(settings_class)).with_suffix(".yaml")
    return path if path.is_file() else None


def read_settings(path: str | Path) -> dict[str, Any]:
    """The YAML's mapping of setting -> default (plain Python values; comments are for the reader).

    Raises:
        ValueError: the file is not a mapping of names to values.
    """
    from omegaconf import OmegaConf

    data = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    if not isinstance(data, dict) or not all(isinstance(k, str) and k.isidentifier() for k in data):
        raise ValueError(f"{str(path)!r} must be a mapping of setting names to default values")
    return data
