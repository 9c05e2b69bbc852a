"""`prunepeft export run=<dir> to=peft`: a finished run's found configuration as a peft adapter.

The library-neutral `found_config.json` is always in the run directory (and copied next to the
export). When every found unit is LoRA (or every one DoRA), this writes a peft `LoraConfig` plus
the retrained weights (`adapter_config.json` + `adapter_model.safetensors`, peft's layout) to
`out` (default `<run>/peft`); serial units (adapters) end with a clear error instead.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from prunepeft.commands.common import run_in_hydra
from prunepeft.config.schema import register_configs
from prunepeft.errors import UserError, check_choice
from prunepeft.io import read_json

log = logging.getLogger(__name__)

TARGETS = ("peft",)


def load_run_config(run: Path) -> DictConfig:
    """The config a run trained with: run.json's `config`, else `.hydra/config.yaml`.

    run.json first: it is written by the run itself when it (re)starts training; `.hydra/` is the
    fallback for runs made by older versions, where Hydra rewrote it on every invocation, including
    one that found DONE and skipped.
    """
    run_json = run / "run.json"
    if run_json.is_file() and isinstance(read_json(run_json).get("config"), dict):
        return OmegaConf.create(read_json(run_json)["config"])
    hydra_cfg = run / ".hydra" / "config.yaml"
    if hydra_cfg.is_file():
        return OmegaConf.load(hydra_cfg)  # type: ignore[return-value]
    raise UserError(f"run={str(run)!r} has neither a config in run.json nor .hydra/config.yaml")


def validate(cfg: DictConfig) -> Path:
    """The cheap checks (the CLI runs them before Hydra, whose run dir is `run=`, creates anything).

    Returns:
        The run directory.
    """
    from prunepeft.peft.found_config import FOUND_CONFIG_FILE

    check_choice("export target (to=)", str(cfg.to), TARGETS)
    if OmegaConf.is_missing(cfg, "run") or not cfg.run:
        raise UserError("export needs run=<directory of a finished `prunepeft search` run>")
    run_path = Path(str(cfg.run))
    if not run_path.is_dir():
        raise UserError(f"run={str(run_path)!r} is not a directory; point run= at a finished search run")
    if not (run_path / FOUND_CONFIG_FILE).is_file():
        raise UserError(f"run={str(run_path)!r} has no {FOUND_CONFIG_FILE} (a finished `prunepeft search` run writes one)")
    return run_path


def run(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """Export `cfg.run` to `cfg.to`; return {"out": <dir>, "found_config": <file>, ...}."""
    from prunepeft.models.families import get_family
    from prunepeft.models.loading import load_backbone
    from prunepeft.peft.export import check_expressible, export_peft
    from prunepeft.peft.found_config import FOUND_CONFIG_FILE, HEAD_FILE, UNITS_FILE, FoundConfig, build_from_found

    run_path = validate(cfg)
    found_file = run_path / FOUND_CONFIG_FILE
    found = FoundConfig.load(found_file)
    check_expressible(list(found.units), where=str(found_file))
    for name in (UNITS_FILE, HEAD_FILE):
        if not (run_path / name).is_file():
            raise UserError(f"run={str(run_path)!r} has no {name}: the search writes it after retraining")
    run_cfg = load_run_config(run_path)
    model, _ = load_backbone(run_cfg.model, int(run_cfg.task.num_labels), int(run_cfg.seed))
    family = get_family(run_cfg.model.family)
    net = build_from_found(model, family, found, int(model.config.hidden_size))
    net.load_units(run_path / UNITS_FILE)
    net.load_head(run_path / HEAD_FILE)
    out = Path(str(cfg.out)) if cfg.out else run_path / "peft"
    export_peft(net, out, model_id=found.model_id, extra_json={FOUND_CONFIG_FILE: found.to_json()})
    log.info("exported %d units to %s", len(found.units), out)
    print(f"peft adapter written to {out} (load with PeftModel.from_pretrained(<base model>, {str(out)!r}))")
    return {"out": str(out), "found_config": str(out / FOUND_CONFIG_FILE), "units": len(found.units)}


register_configs()


@hydra.main(config_path="../conf", config_name="export", version_base="1.3")
def hydra_entry(cfg: DictConfig) -> None:
    """Hydra app of `prunepeft export` (dispatched by prunepeft.cli)."""
    run_in_hydra(run, cfg)
