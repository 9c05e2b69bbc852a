"""`prunepeft search`: the PrunePEFT search (Algorithm 1) in one run directory.

Re-invoked on a finished run directory it skips; on an unfinished one it resumes from the last
finished round (see prunepeft.pruning.checkpoint).
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from prunepeft.run import outputs
from prunepeft.commands.common import log_banner, run_in_hydra, tolerant
from prunepeft.plugins import load as load_plugins
from prunepeft.commands.display import print_found, print_result, print_signal
from prunepeft.config.schema import register_configs
from prunepeft.run.io import read_json, read_jsonl
from prunepeft.run.progress import EpochLogger, estimate_rounds, log_final
from prunepeft.pruning.cost import log_line as cost_line
from prunepeft.analysis.diagnostics import observer_for
from prunepeft.pruning.search import search
from prunepeft.pruning.setup import SearchSetup
from prunepeft.pruning.setup import validate as validate_search
from prunepeft.run.record import RunDir

log = logging.getLogger(__name__)


def _model_skeleton(cfg: DictConfig):
    """The backbone with no weights (meta device), or None when its config is not available offline.

    Tiny models are built for real (a few ms). Pretrained ones need only their config.json: a local
    directory, or the hub cache (no download here; the run itself still loads from the hub).
    """
    import torch
    from transformers import AutoConfig, AutoModelForSequenceClassification

    from prunepeft.models.loading import resolve_local
    from prunepeft.models.tiny import build_tiny

    num_labels = int(cfg.task.num_labels)
    if str(cfg.model.kind) == "tiny":
        return build_tiny(cfg.model, num_labels, 0)[0]
    source = resolve_local(cfg.model.local) or cfg.model.hub_id
    try:
        config = AutoConfig.from_pretrained(str(source), local_files_only=True, num_labels=num_labels)
    except (OSError, ValueError):
        return None
    with torch.device("meta"):
        return AutoModelForSequenceClassification.from_config(config)


def budget_report(cfg: DictConfig) -> dict[str, int] | None:
    """B, the base model's and the supernet's parameters and its unit count, from a weightless model.

    Returns None when the model's config is not available offline (the search checks after loading).

    Raises:
        UserError: an impossible budget (prunepeft.pruning.budget).
    """
    from prunepeft.models.families import get_family
    from prunepeft.peft.accounting import count_parameters
    from prunepeft.peft.supernet import Supernet
    from prunepeft.peft.units import UnitSizes
    from prunepeft.pruning.budget import budget_params, check_budget

    model = _model_skeleton(cfg)
    if model is None:
        return None
    supernet = Supernet.build(model, get_family(cfg.model.family), list(cfg.search_space),
                              UnitSizes.from_model(cfg.model), int(model.config.hidden_size))
    report = count_parameters(supernet)
    budget = budget_params(cfg.budget.percent, cfg.budget.params, report.base)
    check_budget(budget, report.per_unit)
    return {"budget": budget, "base": report.base, "supernet": report.peft, "units": len(report.per_unit)}


def check_budget_early(cfg: DictConfig) -> int | None:
    """Check the budget against the supernet before anything is loaded or written.

    The same check the search makes after loading (prunepeft.pruning.budget), on a weightless copy
    of the backbone, so `budget < smallest unit` fails in a second with no run directory.

    Returns:
        B in parameters, or None when the model's config is not available offline (the search
        checks it after loading).
    """
    report = budget_report(cfg)
    return None if report is None else report["budget"]


# The setups this process has checked, by config: the CLI checks the config before Hydra creates the
# run directory (`prunepeft.cli.validate_overrides`), then Hydra composes the same config again for
# `run`, which takes the answer from here instead of checking twice (one validate per command).
_CHECKED: dict[str, tuple[SearchSetup, dict[str, int] | None]] = {}


def config_dict(cfg: DictConfig) -> dict:
    """The resolved config as plain data (for run.json)."""
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]


def setup(cfg: DictConfig) -> tuple[SearchSetup, dict[str, int] | None]:
    """Check `cfg` and type it, once per config and process (torchtune's `setup`): the search's
    `SearchSetup` (prunepeft.pruning.setup) and, for a strategy that prunes, the budget report.

    Raises:
        UserError: a bad value, or an impossible budget.
    """
    key = OmegaConf.to_yaml(cfg)
    if key not in _CHECKED:
        load_plugins()  # the arms and the installed plug-ins (once per process)
        checked = validate_search(cfg)
        _CHECKED[key] = checked, budget_report(cfg) if checked.strategy.prunes else None
    return _CHECKED[key]


def validate(cfg: DictConfig) -> None:
    """The cheap checks (the CLI runs them before Hydra creates the run directory), budget included."""
    setup(cfg)


def run(cfg: DictConfig, run_dir: Path) -> dict:
    """Run or resume the search configured by `cfg` in `run_dir`; return summary.json's content."""
    load_plugins()  # the arms and the installed plug-ins (once per process)
    rd = RunDir(run_dir)
    rd.check_config(config_dict(cfg))
    if rd.done:
        print(f"already finished: {rd.path} (delete it to run again)")
        return read_json(rd.file(outputs.SUMMARY))
    checked, report = setup(cfg)  # checked and typed once, here (or by the CLI before Hydra started)
    strategy, settings = checked.strategy, checked.search
    log_banner("search", rd.path, cfg, *((report["budget"], report["base"]) if report else ()))
    rounds = estimate_rounds(report["supernet"], report["budget"], report["units"], settings.k) if report else 1
    plan = {"warmup": settings.warmup.epochs if strategy.needs_warmup else 0, "round": rounds,
            "retrain": settings.retrain_epochs}
    EpochLogger(plan).attach(rd)
    try:
        summary = search(checked, rd, observer_for(checked.run.diagnostics))
    except BaseException as err:  # the directory stays resumable; run.json says what happened
        rd.fail(f"{type(err).__name__}: {err}")
        raise
    rd.finish(summary)
    log_final(summary, rd.path, time.time() - rd.started)
    if summary.get("cost"):
        log.info(cost_line(summary["cost"]))  # where the search's time went, and search/retrain
    print_found(rd.file(outputs.FOUND_CONFIG))
    print_result(summary)
    print_signal(read_jsonl(rd.file(outputs.ROUNDS)))
    return summary


register_configs()


@hydra.main(config_path="../conf", config_name="search", version_base="1.3")
def hydra_entry(cfg: DictConfig) -> Any:
    """Hydra entry point of `prunepeft search`."""
    return run_in_hydra(tolerant(run), cfg)
