"""The found configuration (`found_config.json`): which units sit in which layer, with sizes.

Library-neutral and always written by the search (docs/architecture.md#the-run-output-contract): per layer the units and
their sizes, the parameter counts (from `accounting`, the one source of truth) and % of the
backbone, the model family and id. `build_from_found` puts fresh units of that shape on a
backbone (retrain, architecture transfer: Table 6). The retrained unit and head weights next to
it are written and read by `prunepeft.peft.weights` (`save_trained` / `load_trained`).

Layout (every layer listed, empty ones too; `params` per unit from `accounting`):

    {"format": "prunepeft.found_config/1", "family": "bert", "model_name": "minilm_l6",
     "model_id": "sentence-transformers/all-MiniLM-L6-v2", "num_layers": 6, "hidden_size": 384,
     "search_space": ["lora", "adapter"], "units": ["0:lora", "3:adapter", ...],
     "layers": [{"layer": 0, "units": [{"type": "lora", "params": 24576,
                 "sizes": {"lora_r": 16, "lora_alpha": 32.0, "lora_dropout": 0.0}}]}, ...],
     "params": {"peft": ..., "head": ..., "base": ..., "percent_of_base": ...}}
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from prunepeft.run import outputs
from prunepeft.errors import UserError
from prunepeft.run.io import atomic_write_json, read_json
from prunepeft.models.families import Family
from prunepeft.peft.accounting import count_parameters
from prunepeft.peft.supernet import Supernet
from prunepeft.peft.units import UnitId, UnitSizes, get_unit_type, unit_key

FOUND_CONFIG_FILE = outputs.FOUND_CONFIG  # the run-output contract
FORMAT = "prunepeft.found_config/1"


@dataclass
class FoundConfig:
    """A found configuration; `units` maps each kept unit to its sizes, in (layer, type) order."""

    family: str
    num_layers: int
    hidden_size: int
    search_space: list[str]
    units: dict[UnitId, UnitSizes]
    model_name: str | None = None
    model_id: str | None = None
    per_unit: dict[UnitId, int] = field(default_factory=dict)
    peft_params: int = 0
    head_params: int = 0
    base_params: int = 0
    percent: float = 0.0

    @classmethod
    def from_supernet(cls, supernet: Supernet, model_cfg: Any | None = None) -> FoundConfig:
        """Capture the active units of `supernet` (model name/id from a ModelConfig, if given)."""
        report = count_parameters(supernet)
        model_id = None
        if model_cfg is not None:
            model_id = getattr(model_cfg, "hub_id", None) or getattr(model_cfg, "local", None)
        return cls(
            family=supernet.family.name,
            num_layers=supernet.num_layers,
            hidden_size=supernet.hidden_size,
            search_space=list(supernet.search_space),
            units={uid: get_unit_type(uid[1]).own_sizes(supernet.unit_sizes(uid)) for uid in supernet.active_ids()},
            model_name=getattr(model_cfg, "name", None) if model_cfg is not None else None,
            model_id=model_id,
            per_unit=dict(report.per_unit),
            peft_params=report.peft,
            head_params=report.head,
            base_params=report.base,
            percent=report.percent,
        )

    def layers(self) -> dict[int, list[str]]:
        """Layer -> unit types kept there (every layer listed, empty ones too)."""
        out: dict[int, list[str]] = {layer: [] for layer in range(self.num_layers)}
        for layer, name in self.units:
            out.setdefault(layer, []).append(name)
        return out

    def unit_types(self) -> set[str]:
        return {name for _, name in self.units}

    def to_json(self) -> dict[str, Any]:
        layers = [
            {
                "layer": layer,
                "units": [
                    {
                        "type": name,
                        "sizes": get_unit_type(name).sizes_json(self.units[(layer, name)]),
                        "params": self.per_unit.get((layer, name)),
                    }
                    for name in names
                ],
            }
            for layer, names in sorted(self.layers().items())
        ]
        return {
            "format": FORMAT,
            "family": self.family,
            "model_name": self.model_name,
            "model_id": self.model_id,
            "num_layers": self.num_layers,
            "hidden_size": self.hidden_size,
            "search_space": self.search_space,
            "units": [unit_key(uid) for uid in self.units],
            "layers": layers,
            "params": {"peft": self.peft_params, "head": self.head_params, "base": self.base_params,
                       "percent_of_base": self.percent},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], source: str = "found_config") -> FoundConfig:
        """Parse `to_json`'s layout; UserError naming `source` on anything malformed."""
        try:
            params = data["params"]
            units: dict[UnitId, UnitSizes] = {}
            per_unit: dict[UnitId, int] = {}
            known = {*UnitSizes.names(), "site_sizes"}
            for entry in data["layers"]:
                for unit in entry["units"]:
                    uid = (int(entry["layer"]), str(unit["type"]))
                    get_unit_type(uid[1])
                    sizes = {k: v for k, v in unit.get("sizes", {}).items() if k in known}
                    units[uid] = UnitSizes(**sizes)
                    if unit.get("params") is not None:
                        per_unit[uid] = int(unit["params"])
            return cls(
                family=str(data["family"]), num_layers=int(data["num_layers"]),
                hidden_size=int(data["hidden_size"]), search_space=list(data["search_space"]),
                units=units, model_name=data.get("model_name"), model_id=data.get("model_id"), per_unit=per_unit,
                peft_params=int(params["peft"]), head_params=int(params["head"]),
                base_params=int(params["base"]), percent=float(params["percent_of_base"]),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise UserError(f"{source} is not a valid found configuration ({type(err).__name__}: {err})") from None

    def save(self, path: str | os.PathLike) -> Path:
        """Write atomically to `path` (a `.json` file, or a directory to put found_config.json in)."""
        return atomic_write_json(_json_path(path), self.to_json())

    @classmethod
    def load(cls, path: str | os.PathLike) -> FoundConfig:
        """Read a found_config.json (or the one inside a run directory)."""
        file = _json_path(path)
        if not file.exists():
            raise UserError(f"no found configuration at {file} (a finished `prunepeft search` run writes one)")
        return cls.from_json(read_json(file), str(file))


def _json_path(path: str | os.PathLike) -> Path:
    p = Path(path)
    return p if p.suffix == ".json" else p / FOUND_CONFIG_FILE


def build_from_found(
    model: nn.Module,
    family: Family,
    found: FoundConfig,
    hidden_size: int,
    scheme: str = "standard",
    generator: torch.Generator | None = None,
) -> Supernet:
    """Inject exactly the found units (fresh `scheme` init) into a fresh backbone.

    Raises:
        UserError: when the backbone's depth differs from the one the configuration was found on.
    """
    from prunepeft.models.families import transformer_layers

    depth = len(transformer_layers(model, family))
    if depth != found.num_layers:
        raise UserError(
            f"the found configuration is for a {found.num_layers}-layer model ({found.model_name or found.family}); "
            f"this backbone has {depth} layers"
        )
    return Supernet.from_units(model, family, found.units, hidden_size, found.search_space, scheme, generator)
