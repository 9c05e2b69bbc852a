"""`prunepeft export run=<dir> [to=peft|prunepeft] [out=<dir>]`: a finished run's found configuration.

Without `to=`, the format is peft where peft can express the configuration (LoRA and/or DoRA
units: `save_pretrained` adapters, loadable with `PeftModel.from_pretrained`) and prunepeft's
self-contained format otherwise (serial adapter units: peft has no bottleneck adapters); the
message says which. The default output is `exports/<run-name>-<format>/`, with the export's log
(`export.log`), `found_config.json` and a model card (README.md) inside. The run directory is
only read, never written.
"""
from __future__ import annotations

import logging
import shlex
import shutil
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from prunepeft.run import outputs
from prunepeft.api import check_run_dir, load_run_config  # noqa: F401  (load_run_config: public here too)
from prunepeft.commands.common import run_in_hydra
from prunepeft.config.schema import register_configs
from prunepeft.errors import UserError, check_choice
from prunepeft.run.io import read_json, read_jsonl

log = logging.getLogger(__name__)

TARGETS = ("auto", "peft", "prunepeft")
EXPORTS_DIR = "exports"


def validate(cfg: DictConfig) -> Path:
    """The cheap checks (the CLI runs them before Hydra starts anything).

    Returns:
        The run directory.
    """
    check_choice("export target (to=)", str(cfg.to), TARGETS)
    if OmegaConf.is_missing(cfg, "run") or not cfg.run:
        raise UserError("export needs run=<directory of a finished `prunepeft search` or `prunepeft baseline` run>")
    run_path = check_run_dir(cfg.run)
    if cfg.out and Path(str(cfg.out)).resolve() == run_path.resolve():
        raise UserError(f"out={str(cfg.out)!r} is the run directory; an export never writes into its run "
                        "(leave out= unset for exports/<run-name>-<format>/)")
    return run_path


def run_name(run_path: Path, run_cfg: DictConfig) -> str:
    """`<task>-<model>-<run dir name>`, leaving out what the directory's name already says."""
    name = run_path.resolve().name
    parts = [str(p) for p in (run_cfg.task.name, run_cfg.model.name) if str(p) not in name]
    return "-".join([*parts, name])


def _budget_text(run_path: Path, run_cfg: DictConfig) -> str:
    rounds = read_jsonl(run_path / outputs.ROUNDS) if (run_path / outputs.ROUNDS).is_file() else []
    budget = run_cfg.get("budget", {}) or {}
    spec = (f"budget.params={budget.get('params')}" if budget.get("params") is not None
            else f"{budget.get('percent')}% of the base model, budget.percent={budget.get('percent')}")
    if rounds and rounds[0].get("budget") is not None:
        return f"B = {int(rounds[0]['budget']):,} parameters ({spec})"
    return spec


# What the CLI adds to a command line on its own (prunepeft.cli, sweep.swept_dirname_override): not
# the user's, and not needed to run it again.
_CLI_ADDED = ("hydra.job.config.override_dirname.exclude_keys=", "hydra/job_logging=")


def command_text(run_path: Path, run_cfg: DictConfig | None = None) -> str:
    """The command line that trains this run again, as a user types it: `prunepeft <command> <overrides>`.

    The overrides are the job's own (`.hydra/overrides.yaml`: in a sweep, this job's values), else
    run.json's argv. The CLI records argv[0] as `prunepeft <command>`; the command word is kept.
    """
    info = read_json(run_path / outputs.RUN_JSON) if (run_path / outputs.RUN_JSON).is_file() else {}
    command = str(info.get("command") or (run_cfg.get("command") if run_cfg is not None else None) or "search")
    overrides_file = run_path / outputs.HYDRA_OVERRIDES
    if overrides_file.is_file():
        args = [str(a) for a in (OmegaConf.load(overrides_file) or [])]
    else:
        argv = [str(a) for a in info.get("argv") or []]
        if not argv:
            return f"prunepeft {command} (the overrides are in {run_path.name}/run.json)"
        first = argv[0].split()
        args = argv[1:] if first[-1] == command else argv[2:] if argv[1:2] == [command] else argv[1:]
    args = [a for a in args if a not in ("-m", "--multirun") and not a.startswith(_CLI_ADDED)]
    return " ".join(shlex.quote(a) for a in ["prunepeft", command, *args])


def run(cfg: DictConfig, run_dir: Path | None = None) -> dict[str, Any]:
    """Export `cfg.run`; return {"out", "format", "found_config", "units", "adapters"}."""
    from prunepeft.api import open_run
    from prunepeft.peft.export import (
        EXPORT_FILE,
        NO_SERIAL,
        adapter_names,
        atomic_dir,
        choose_format,
        peft_kinds,
        save_peft,
        save_self_contained,
    )
    from prunepeft.run.io import read_json
    from prunepeft.arms.backbone_prune import FILE as BACKBONE_FILE
    from prunepeft.peft.found_config import FOUND_CONFIG_FILE
    from prunepeft.peft.model_card import model_card
    from prunepeft.peft.units import get_unit_type, unit_key

    run_path = validate(cfg)
    loaded = open_run(run_path)
    found, run_cfg = loaded.found, loaded.config
    units = list(found.units)
    fmt = choose_format(units) if str(cfg.to) == "auto" else str(cfg.to)
    full = (run_path / outputs.MODEL).is_file()  # a full fine-tuning baseline: every weight was trained
    if full and fmt == "peft":
        raise UserError(f"{run_path} is a full fine-tuning run ({outputs.MODEL}): peft adapters cannot hold a "
                        "trained backbone; use to=prunepeft (or leave to= out)")
    if fmt == "peft":
        peft_kinds(units, where=str(run_path / FOUND_CONFIG_FILE))  # a clear error for to=peft + adapters
    out = Path(str(cfg.out)) if cfg.out else Path(EXPORTS_DIR) / f"{run_name(run_path, run_cfg)}-{fmt}"
    model_id = found.model_id or (str(run_cfg.model.hub_id) if run_cfg.model.get("hub_id") else None)
    kinds = peft_kinds(units) if fmt == "peft" else []
    adapters = list(adapter_names(kinds).values()) if fmt == "peft" else []
    meta = {"model": OmegaConf.to_container(run_cfg.model, resolve=True), "num_labels": int(run_cfg.task.num_labels),
            "seed": int(run_cfg.seed), "task": OmegaConf.to_container(run_cfg.task, resolve=True),
            "max_length": int(run_cfg.train.max_length), "found_config": found.to_json(),
            "summary": {k: loaded.summary.get(k) for k in ("metrics", "primary", "params")},
            "source_run": str(run_path.resolve()), "adapters": adapters}
    card = model_card(fmt=fmt, model_id=model_id, model_name=str(run_cfg.model.name), task=str(run_cfg.task.name),
                      metric=loaded.summary.get("primary") or {}, found=found.to_json(),
                      budget=_budget_text(run_path, run_cfg), command=command_text(run_path, run_cfg), adapters=adapters,
                      out=str(out), num_labels=int(run_cfg.task.num_labels))
    extra = {FOUND_CONFIG_FILE: found.to_json()}
    if (run_path / BACKBONE_FILE).is_file():  # early backbone pruning: the loader re-prunes from it
        if fmt == "peft":
            raise UserError(f"{run_path} pruned its backbone ({BACKBONE_FILE}): a peft export would load the "
                            "unpruned hub model; use to=prunepeft")
        extra[BACKBONE_FILE] = read_json(run_path / BACKBONE_FILE)
    serial = [unit_key(u) for u in units if get_unit_type(u[1]).kind == "serial"]
    with atomic_dir(out) as tmp:
        handler = logging.FileHandler(tmp / "export.log", encoding="utf-8")
        handler.setFormatter(logging.Formatter("[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"))
        root = logging.getLogger("prunepeft")
        level = root.level
        root.addHandler(handler)
        if root.getEffectiveLevel() > logging.INFO:  # the log file always gets the INFO lines
            root.setLevel(logging.INFO)
        try:
            log.info("export %s (%d units: %s) as %s to %s", run_path, len(units), ", ".join(map(unit_key, units)),
                     fmt, out)
            if fmt == "peft":
                save_peft(loaded.supernet, tmp, model_id, {**extra, EXPORT_FILE: {
                    "format": "prunepeft.export/1", **meta}}, card)
                log.info("peft adapters %s, base_model_name_or_path=%s", adapters, model_id)
            else:
                save_self_contained(loaded.supernet, tmp, meta, extra, card)
                if full:
                    shutil.copyfile(run_path / outputs.MODEL, tmp / outputs.MODEL)  # load_self_contained reads it
                if serial:
                    log.info("serial units %s: %s, so this is prunepeft's self-contained format", serial, NO_SERIAL)
        finally:
            root.setLevel(level)
            root.removeHandler(handler)
            handler.close()
    if fmt == "peft":
        how = f"PeftModel.from_pretrained(<base model>, {str(out)!r})"
        if len(adapters) > 1:
            how += f" + load_adapter({str(out / adapters[1])!r}, adapter_name={adapters[1]!r}); see README.md"
        print(f"exported as peft ({' + '.join(kinds)} adapters) to {out} (load with {how})")
    else:
        why = (f"the configuration keeps serial adapter units ({', '.join(serial)}) and {NO_SERIAL}, so "
               if serial and str(cfg.to) == "auto" else "")
        print(f"exported in prunepeft's self-contained format to {out}: {why}load it with "
              f"prunepeft.load_export({str(out)!r})")
    return {"out": str(out), "format": fmt, "found_config": str(out / FOUND_CONFIG_FILE), "units": len(units),
            "adapters": adapters}


register_configs()


@hydra.main(config_path="../conf", config_name="export", version_base="1.3")
def hydra_entry(cfg: DictConfig) -> None:
    """Hydra app of `prunepeft export` (dispatched by prunepeft.cli)."""
    run_in_hydra(run, cfg)
