"""`prunepeft baseline`: train one fixed configuration and write the run outputs.

Methods: `fft` (full fine-tuning), `head` (frozen backbone), uniform `lora`/`dora`/`adapter`/
`houlsby` over all layers (sizes from the model config, from `lora_r=`/`adapter_bottleneck=`, or
sized to the budget with `size_to_budget=true`: the fair uniform baselines of Table 2, or to a search
run's found parameters with `match_params=<run>`: the comparison at equal parameters), and
`found run=<dir>` (retrain an earlier search's found configuration from a fresh initialisation:
the paper's architecture transfer, Table 6).
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, NamedTuple

import hydra
from omegaconf import DictConfig, OmegaConf
from rich.console import Console

from prunepeft.run import outputs
from prunepeft.commands.common import log_banner, run_in_hydra, tolerant
from prunepeft.plugins import load as load_plugins
from prunepeft.commands.display import print_result
from prunepeft.config.schema import register_configs
from prunepeft.errors import UserError, check_choice
from prunepeft.run.io import read_json, read_run_file
from prunepeft.run.progress import EpochLogger, log_final
from prunepeft.pruning.budget import budget_params
from prunepeft.run.record import RunDir
from prunepeft.seed import seed_everything

log = logging.getLogger(__name__)


def methods() -> tuple[str, ...]:
    """fft, head, one uniform baseline per registered unit type (peft.units.UNIT_TYPES), found."""
    from prunepeft.peft.units import UNIT_TYPES

    return ("fft", "head", *UNIT_TYPES, "found")


FOUND_FILE = outputs.FOUND_CONFIG


def _found_path(cfg: DictConfig) -> Path:
    """The found_config.json of `run=<dir>` (checked before anything is trained or written)."""
    if not cfg.run:
        raise UserError("method=found needs run=<directory of an earlier `prunepeft search`>")
    path = Path(cfg.run) / FOUND_FILE
    if not path.is_file():
        raise UserError(f"run={cfg.run!r} has no {FOUND_FILE}; point run= at a finished search run directory")
    return path


def _uniform_sizes(cfg: DictConfig, model, family, base: int, matched: int | None = None):
    """Unit sizes for a uniform baseline: config defaults, explicit overrides, or sized to the budget
    (`matched`: to that many PEFT parameters instead, `match_params`)."""
    from prunepeft.peft.sizing import uniform_size_for_budget
    from prunepeft.peft.units import UnitSizes, get_unit_type
    from prunepeft.pruning.budget import budget_params

    if not cfg.size_to_budget and matched is None:
        return UnitSizes.from_model(cfg.model, lora_r=cfg.lora_r, adapter_bottleneck=cfg.adapter_bottleneck)
    if cfg.lora_r is not None or cfg.adapter_bottleneck is not None:
        source = "match_params computes the size from that run's parameters" if matched is not None else \
            "size_to_budget=true computes the size from the budget"
        raise UserError(f"{source}; drop lora_r=/adapter_bottleneck=")
    budget = matched if matched is not None else budget_params(cfg.budget.percent, cfg.budget.params, base)
    size = uniform_size_for_budget(model, family, cfg.method, budget, model.config.hidden_size)
    return get_unit_type(cfg.method).with_size(UnitSizes.from_model(cfg.model), size)


def _size_record(sizes) -> dict:
    """summary.json's `sizes`: the size knob of every registered unit type ({"lora_r": .., "adapter_bottleneck": ..})."""
    from prunepeft.peft.units import UNIT_TYPES

    return {knob: getattr(sizes, knob) for knob in dict.fromkeys(t.size_field for t in UNIT_TYPES.values())}


class Prepared(NamedTuple):
    """What `prepare` made: the model to train, its parameter groups, the params report, and the
    supernet holding the units (None for fft/head, which train no units)."""

    model: Any
    groups: dict[str, list]
    params: dict[str, Any]
    supernet: Any = None


def prepare(cfg: DictConfig, model, family, matched: int | None = None) -> Prepared:
    """Make `model` trainable for `cfg.method` (uniform units sized to `matched` PEFT parameters when given).

    Returns:
        `Prepared`: the model to train, {"peft"|"head"|"backbone": parameters}, the params report
        {peft, head, base, percent, trainable[, sizes]} where percent = 100 * peft / base, and the
        supernet (uniform and found methods).
    """
    from prunepeft.models.families import base_model_parameter_count, head_parameters

    head = [p for _, p in head_parameters(model, family)]
    base = base_model_parameter_count(model, family)
    net = None
    if cfg.method in ("fft", "head"):
        head_ids = {id(p) for p in head}
        backbone = [p for p in model.parameters() if id(p) not in head_ids]
        for p in backbone:
            p.requires_grad_(cfg.method == "fft")
        for p in head:
            p.requires_grad_(True)
        peft = sum(p.numel() for p in backbone) if cfg.method == "fft" else 0
        groups = {"head": head, "backbone": backbone if cfg.method == "fft" else []}
        report = {"peft": peft, "head": sum(p.numel() for p in head), "base": base}
    else:
        from prunepeft.peft.accounting import count_parameters
        from prunepeft.peft.supernet import Supernet

        if cfg.method == "found":
            from prunepeft.peft.found_config import FoundConfig, build_from_found

            found = FoundConfig.load(_found_path(cfg))
            net = build_from_found(model, family, found, model.config.hidden_size)
            sizes = None
        else:
            sizes = _uniform_sizes(cfg, model, family, base, matched)
            net = Supernet.build(model, family, [cfg.method], sizes, model.config.hidden_size)
        counted = count_parameters(net)
        model = net.model
        groups = {"peft": net.peft_parameters(), "head": net.head_parameters()}
        report = {"peft": counted.peft, "head": counted.head, "base": counted.base}
        if sizes is not None:
            report["sizes"] = _size_record(sizes)
    report["percent"] = round(100.0 * report["peft"] / report["base"], 4)
    report["trainable"] = sum(p.numel() for g in groups.values() for p in g)
    return Prepared(model, groups, report, net)


def save_weights(cfg: DictConfig, model, family, supernet, run_dir: Path) -> None:
    """What `load_run`, `predict`, `evaluate` and `export` read, as a search writes it: the trained
    units + head (`units.safetensors`, `head.safetensors`) and `found_config.json`; fft also writes
    every trained weight (`model.safetensors`). fft and head have a configuration with no units."""
    from prunepeft.peft.found_config import FoundConfig
    from prunepeft.peft.supernet import Supernet
    from prunepeft.peft.weights import save_model_weights, save_trained

    if cfg.method == "fft":
        save_model_weights(model, run_dir)  # before the unit-less supernet below freezes the backbone
    if supernet is None:
        supernet = Supernet(model, family, int(model.config.hidden_size), list(cfg.search_space))
    save_trained(supernet, run_dir)
    FoundConfig.from_supernet(supernet, cfg.model).save(run_dir)


def matched_epochs(source: str | Path, train_size: int) -> tuple[int, dict[str, Any]]:
    """Whole epochs over `train_size` rows closest to the examples the search run `source` trained in all.

    A warm-started retrain (`search.retrain_init=warm`) has trained its units through the warm-up, the
    rounds and the retrain; a uniform baseline given the same number of trained examples is the fair
    comparison (issue 22, item 5). Forward-only passes (probes, evaluation) are not counted, as in
    Table 4's epoch-equivalents. Rounding to whole epochs keeps the baseline's schedule the one every
    other baseline has; the record states how far it lands from the target.

    Returns:
        (epochs, record): epochs ≥ 1, and {"run", "target_examples", "epochs", "examples"} for summary.json.
    """
    summary = read_run_file(Path(source) / outputs.SUMMARY, "object")
    examples = (summary.get("cost") or {}).get("examples") or {}
    if "search_trained" not in examples or "retrain_trained" not in examples:
        raise UserError(f"match_compute={source}: its {outputs.SUMMARY} records no trained examples (a search run "
                        "finished since summary.json had `cost` is needed); re-run that search, or drop match_compute")
    target = int(examples["search_trained"]) + int(examples["retrain_trained"])
    epochs = max(1, int(target / int(train_size) + 0.5))  # the nearest whole epoch, halves up
    return epochs, {"run": str(source), "target_examples": target, "epochs": epochs,
                    "examples": epochs * int(train_size)}


def matched_params(source: str | Path) -> dict[str, Any]:
    """The PEFT parameters of the search run `source`'s found configuration, for `match_params`.

    A uniform baseline sized to each search run's own found parameter count is the comparison at equal
    parameters (claim (a') of Table 2; the budget is only an upper bound on what a search keeps).

    Returns:
        {"run", "params"} for summary.json's `match_params`.
    """
    path = Path(source) / outputs.SUMMARY
    if not path.is_file():
        raise UserError(f"match_params={str(source)!r} has no {outputs.SUMMARY}; point it at a finished "
                        "`prunepeft search` run directory, or drop match_params")
    summary = read_run_file(path, "object")
    peft = (summary.get("params") or {}).get("peft") if summary.get("command") == "search" else None
    if not isinstance(peft, int) or peft <= 0:
        raise UserError(f"match_params={str(source)!r} is not a finished search run with a found configuration "
                        f"(its {outputs.SUMMARY} records no params.peft); point it at a `prunepeft search` run")
    return {"run": str(source), "params": peft}


def validate(cfg: DictConfig) -> None:
    """The cheap checks (the CLI runs them before Hydra creates the run directory)."""
    load_plugins()  # the arms and the installed plug-ins (once per process)
    from prunepeft.metrics import check_task_metrics
    from prunepeft.train.device import check_train_config

    check_choice("method", cfg.method, methods())
    if cfg.method == "found":
        _found_path(cfg)
    if cfg.get("match_params"):  # the run itself is read in `run`: a sweep's run paths exist only per job
        from prunepeft.peft.units import UNIT_TYPES

        if cfg.method not in UNIT_TYPES:
            raise UserError(f"match_params sizes uniform units to a search run's parameters; method={cfg.method} "
                            f"has none: use method={'|'.join(UNIT_TYPES)}, or drop match_params")
    check_task_metrics(cfg.task)
    check_train_config(cfg.train)
    if cfg.get("backbone_prune") is not None and cfg.backbone_prune.enabled:
        raise UserError("backbone_prune.enabled=true: a baseline does not estimate a backbone pruning of its "
                        "own (only `prunepeft search` does); `method=found run=<pruned search>` re-prunes the "
                        "backbone exactly as that search did, from its backbone_prune.json")


def run(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """Train `cfg.method` on `cfg.task` and write run.json, events.jsonl, summary.json, DONE and the
    weights a search run has (`save_weights`), so that a baseline loads, predicts, evaluates and
    exports like one.

    A directory that already has DONE is skipped and its summary returned.
    """
    load_plugins()  # the arms and the installed plug-ins (once per process)
    run_dir = Path(run_dir)
    RunDir(run_dir).check_config(OmegaConf.to_container(cfg, resolve=True))
    if (run_dir / outputs.DONE).exists():
        Console().print(f"already finished: {run_dir} (DONE exists; delete the directory to run again)")
        return read_json(run_dir / outputs.SUMMARY)
    validate(cfg)
    # Heavy imports after the cheap checks (a typo in `method` fails instantly).
    from prunepeft.data import build_task_data
    from prunepeft.config.typed import RunSettings
    from prunepeft.models.families import get_family
    from prunepeft.models.head import start_regression_head
    from prunepeft.models.loading import load_backbone
    from prunepeft.arms import backbone_stage
    from prunepeft.train import build_param_groups, fit, resolve_device

    device = resolve_device(cfg.train.device)
    seed_everything(cfg.seed)
    # Load and validate everything a user can get wrong BEFORE writing run.json (nothing half-written).
    family = get_family(cfg.model.family)
    model, tokenizer = load_backbone(cfg.model, cfg.task.num_labels, cfg.seed)
    backbone_stage.reprune_found(model, family, cfg.get("method"), cfg.get("run"))  # method=found on a pruned search: prune the same way
    settings = RunSettings.from_config(cfg)  # typed once: the data stage and summary.json's labels
    data = build_task_data(settings.data, tokenizer)
    start_regression_head(model, family, data.train["labels"], cfg.train.regression_head_bias)
    equal_params = matched_params(cfg.match_params) if cfg.get("match_params") else None  # before run.json: nothing half-written
    model, groups, params, supernet = prepare(cfg, model, family, equal_params["params"] if equal_params else None)
    log.info("baseline %s on %s (%s): %d train examples, eval %s; trainable %s", cfg.method, cfg.task.name,
             cfg.model.name, len(data.train), {k: len(v) for k, v in data.evals.items()}, params)

    epochs, matched = int(cfg.train.epochs), None
    if cfg.get("match_compute"):  # read before run.json is written: a missing source run writes nothing
        epochs, matched = matched_epochs(cfg.match_compute, len(data.train))
        log.info("match_compute: %d epochs = %d examples, for the %d %s trained", epochs, matched["examples"],
                 matched["target_examples"], cfg.match_compute)
    rd = RunDir(run_dir)
    budget = (equal_params["params"] if equal_params else
              budget_params(cfg.budget.percent, cfg.budget.params, params["base"]) if cfg.size_to_budget else None)
    log_banner("baseline", rd.path, cfg, budget, params["base"])
    EpochLogger({"train": epochs}).attach(rd)
    # A baseline has no checkpoint: an unfinished directory restarts, so drop the stale step events.
    rd.file(outputs.EVENTS).unlink(missing_ok=True)
    rd.start("baseline", cfg.seed, OmegaConf.to_container(cfg, resolve=True), str(device), data.identity)
    try:
        result = fit(model, build_param_groups(**groups, train_cfg=cfg.train), data.train, data.evals, tokenizer,
                     train_cfg=cfg.train, task=cfg.task, epochs=epochs, seed=cfg.seed, run=rd,
                     phase="train")
    except BaseException as err:
        rd.fail(f"{type(err).__name__}: {err}")
        raise
    save_weights(cfg, model, family, supernet, rd.path)
    summary = outputs.summary(
        "baseline", settings.labels, str(cfg.method), result, params=params,
        train={"epochs": epochs, "wall_s": result.wall_s, "examples_seen": result.examples_seen,
               "steps": result.steps, "train_size": len(data.train), "train_size_full": data.train_size_full,
               **({"match_compute": matched} if matched else {})},
        run=cfg.run if cfg.method == "found" else None, size_to_budget=bool(cfg.size_to_budget or equal_params),
        budget=({"percent": None, "params": equal_params["params"]} if equal_params else
                OmegaConf.to_container(cfg.budget) if cfg.size_to_budget else None),
        **({"match_params": equal_params} if equal_params else {}),
        **backbone_stage.found_record(cfg.get("method"), cfg.get("run"), model, params["base"]),  # {} unless the backbone was re-pruned
    )
    rd.finish(summary)
    log_final(summary, rd.path, time.time() - rd.started)
    print_result(summary)
    return summary


register_configs()


@hydra.main(config_path="../conf", config_name="baseline", version_base="1.3")
def hydra_entry(cfg: DictConfig) -> Any:
    """Hydra app of `prunepeft baseline` (dispatched by prunepeft.cli)."""
    return run_in_hydra(tolerant(run), cfg)
