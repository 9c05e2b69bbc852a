"""The Python API: load a finished run or an export, predict, and recompute a run's metrics.

    import prunepeft
    model, tokenizer = prunepeft.load_run("outputs/search/rte/minilm_l6/hybrid-s42")
    model, tokenizer = prunepeft.load_export("exports/rte-minilm_l6-hybrid-s42-peft")
    preds = prunepeft.predict("outputs/search/rte/minilm_l6/hybrid-s42", [("A man sleeps.", "He is awake.")])
    metrics = prunepeft.evaluate("outputs/search/rte/minilm_l6/hybrid-s42")   # == summary.json's

`load_run` returns the trained model (backbone + found units + head, eval mode) and its tokenizer, of
a search or of a baseline (uniform units, head only, or fft: then the trained backbone too); it reads
only the run directory (found_config.json, units/head safetensors, model.safetensors for fft, run.json).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from prunepeft.run import outputs
from prunepeft.errors import UserError
from prunepeft.run.io import read_json

__all__ = ["LoadedRun", "evaluate", "load_export", "load_run", "load_run_config", "open_run", "predict"]


def load_run_config(run: str | os.PathLike) -> DictConfig:
    """The config a run trained with: run.json's `config`, else `.hydra/config.yaml`.

    run.json first: it is written by the run itself when it (re)starts training; `.hydra/` is the
    fallback for runs made by older versions, where Hydra rewrote it on every invocation, including
    one that found DONE and skipped.
    """
    run = Path(run)
    run_json = run / outputs.RUN_JSON
    if run_json.is_file() and isinstance(read_json(run_json).get("config"), dict):
        return OmegaConf.create(read_json(run_json)["config"])
    hydra_cfg = run / outputs.HYDRA_CONFIG
    if hydra_cfg.is_file():
        return OmegaConf.load(hydra_cfg)  # type: ignore[return-value]
    raise UserError(f"run={str(run)!r} has neither a config in {outputs.RUN_JSON} nor {outputs.HYDRA_CONFIG}")


@dataclass
class LoadedRun:
    """A finished run, rebuilt: the model with its units, tokenizer, config and records."""

    path: Path
    model: torch.nn.Module
    tokenizer: Any
    config: DictConfig
    supernet: Any  # prunepeft.peft.Supernet
    found: Any  # prunepeft.peft.FoundConfig
    summary: dict


def check_run_dir(run: str | os.PathLike | None) -> Path:
    """The run directory, checked for what loading needs (UserError naming what is missing)."""
    if run in (None, "", "???"):
        raise UserError("needs run=<directory of a finished `prunepeft search` or `prunepeft baseline` run>")
    path = Path(str(run))
    if not path.is_dir():
        raise UserError(f"run={str(path)!r} is not a directory; point run= at a finished search or baseline run")
    info = read_json(path / outputs.RUN_JSON) if (path / outputs.RUN_JSON).is_file() else {}
    baseline = info.get("command") == "baseline" or (info.get("config") or {}).get("command") == "baseline"
    # A baseline trained before baselines saved their weights has none: say how to get them.
    again = ("; it was trained before baselines saved what loading needs: run it again with restart=true"
             if baseline else "")
    if not (path / outputs.FOUND_CONFIG).is_file():
        raise UserError(f"run={str(path)!r} has no {outputs.FOUND_CONFIG} (a finished search or baseline run "
                        f"writes one){again}")
    for name in (outputs.UNITS, outputs.HEAD):
        if not (path / name).is_file():
            raise UserError(f"run={str(path)!r} has no {name}: the run writes it when training ends{again}")
    return path


def open_run(run: str | os.PathLike, device: str | torch.device | None = None) -> LoadedRun:
    """Rebuild a finished run (search or baseline): the backbone, the units and head with their weights
    (a full fine-tuning baseline: every trained weight, from `model.safetensors`).

    Raises:
        UserError: the directory is not a finished search run (missing files named).
    """
    from prunepeft.models.families import get_family
    from prunepeft.models.loading import load_backbone
    from prunepeft.peft.found_config import FoundConfig, build_from_found
    from prunepeft.peft.weights import load_model_weights, load_trained
    from prunepeft.arms.backbone_stage import reprune

    path = check_run_dir(run)
    cfg = load_run_config(path)
    found = FoundConfig.load(path)
    model, tokenizer = load_backbone(cfg.model, int(cfg.task.num_labels), int(cfg.seed))
    load_model_weights(model, path)  # fft: the trained backbone (no-op for runs that train units)
    reprune(model, get_family(cfg.model.family), path)  # early backbone pruning: as the run did (no-op if off)
    net = build_from_found(model, get_family(cfg.model.family), found, int(model.config.hidden_size))
    load_trained(net, path)
    net.model.eval()
    if device is not None:
        net.model.to(torch.device(device))
    summary = read_json(path / outputs.SUMMARY) if (path / outputs.SUMMARY).is_file() else {}
    return LoadedRun(path, net.model, tokenizer, cfg, net, found, summary)


def load_run(run: str | os.PathLike, device: str | torch.device | None = None) -> tuple[torch.nn.Module, Any]:
    """The trained model of a finished run, `prunepeft search` or `prunepeft baseline`, and its tokenizer.

    Args:
        run: the run directory (holds found_config.json, units.safetensors, head.safetensors; a full
            fine-tuning baseline also model.safetensors).
        device: where to put the model (default: CPU).

    Returns:
        (model, tokenizer): a Hugging Face `...ForSequenceClassification` in eval mode with the
        found units inside; `model(**tokenizer(texts, return_tensors="pt")).logits`.
    """
    loaded = open_run(run, device)
    return loaded.model, loaded.tokenizer


def load_export(path: str | os.PathLike, model: torch.nn.Module | None = None, tokenizer: Any | None = None,
                ) -> tuple[torch.nn.Module, Any]:
    """Load a directory written by `prunepeft export`, without the run directory.

    Args:
        path: the export directory (peft or prunepeft format).
        model: the base model to put the adapters/units on (default: the backbone recorded in the
            export, from its hub id or local source).
        tokenizer: its tokenizer (default: the recorded backbone's).

    Returns:
        (model, tokenizer) in eval mode; for a peft export the model is a `PeftModel` with every
        exported adapter active.
    """
    from prunepeft.peft.export import EXPORT_FILE

    path = Path(path)
    if not (path / EXPORT_FILE).is_file():
        raise UserError(f"{str(path)!r} is not a prunepeft export (no {EXPORT_FILE}); "
                        "make one with `prunepeft export run=<run dir>`")
    if not (path / "adapter_config.json").is_file():
        model, tokenizer, _ = load_self_contained(path, model, tokenizer)
        return model, tokenizer
    return _load_peft_export(path, model, tokenizer)


def _load_peft_export(path: Path, model: torch.nn.Module | None, tokenizer: Any | None) -> tuple[torch.nn.Module, Any]:
    from peft import PeftModel

    from prunepeft.models.loading import load_backbone
    from prunepeft.peft.export import EXPORT_FILE, activate_adapters

    meta = read_json(path / EXPORT_FILE)
    if model is None or tokenizer is None:
        base, base_tok = load_backbone(OmegaConf.create(meta["model"]), int(meta["num_labels"]), int(meta["seed"]))
        model = base if model is None else model
        tokenizer = base_tok if tokenizer is None else tokenizer
    peft_model = PeftModel.from_pretrained(model, str(path))
    names = list(meta.get("adapters") or ["default"])
    for name in names[1:]:
        peft_model.load_adapter(str(path / name), adapter_name=name)
    if len(names) > 1:
        activate_adapters(peft_model, names)
    peft_model.eval()
    return peft_model, tokenizer


def _open_any(source: str | os.PathLike) -> tuple[torch.nn.Module, Any, Any, int]:
    """(model, tokenizer, task config, max_length trained with) of a run or an export directory."""
    from prunepeft.peft.export import EXPORT_FILE

    path = Path(source)
    if (path / EXPORT_FILE).is_file():
        model, tokenizer = load_export(path)
        meta = read_json(path / EXPORT_FILE)
        return model, tokenizer, OmegaConf.create(meta["task"]), int(meta["max_length"])
    loaded = open_run(path)
    return loaded.model, loaded.tokenizer, loaded.config.task, int(loaded.config.train.max_length)


@torch.no_grad()
def predict_logits(model: torch.nn.Module, tokenizer: Any, texts: list[tuple[str, ...]], max_length: int = 256,
                   batch_size: int = 64) -> np.ndarray:
    """Logits of `model` for `texts` (one tuple per example: one text, or a pair), in order."""
    from prunepeft.train.device import model_device

    device = model_device(model)
    model.eval()
    out = []
    for start in range(0, len(texts), batch_size):
        chunk = texts[start:start + batch_size]
        columns = [list(col) for col in zip(*chunk)]
        enc = tokenizer(*columns, truncation=True, max_length=max_length, padding=True, return_tensors="pt")
        out.append(model(**{k: v.to(device) for k, v in enc.items()}).logits.float().cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, 0), dtype=np.float32)


def predict(source: str | os.PathLike, texts: list[str] | list[tuple[str, ...]], batch_size: int = 64) -> dict[str, np.ndarray]:
    """Predictions of a run (or an export) for `texts`.

    Args:
        source: a run directory or an export directory.
        texts: strings, or tuples of (text, text) for pair tasks (RTE, MRPC, ...); truncated to
            the length the run trained with (`train.max_length`).

    Returns:
        {"prediction": class ids (or the regression output), "logits": the raw logits}.
    """
    model, tokenizer, task, max_length = _open_any(source)
    rows = [t if isinstance(t, tuple) else (t,) for t in texts]
    logits = predict_logits(model, tokenizer, rows, max_length=max_length, batch_size=batch_size)
    pred = logits[:, 0] if int(task.num_labels) == 1 else logits.argmax(-1)
    return {"prediction": pred, "logits": logits}


def evaluate(run: str | os.PathLike, task: str | Any | None = None, split: str | None = None,
             data_dir: str | None = None) -> dict[str, float]:
    """Recompute a run's metrics on `split` of `task` (default: the run's task and first eval split).

    Uses the run's own tokenisation length, eval subset (`data.eval_subset`, same seed), batch
    size and precision, so on the run's device the run's own task and split give summary.json's
    `metrics[split]` exactly.
    """
    from prunepeft.data import stratified_subset
    from prunepeft.data.glue import load_raw_splits
    from prunepeft.data.tokenize import tokenize_split
    from prunepeft.train.loop import evaluate as evaluate_model

    loaded = open_run(run)
    cfg = loaded.config
    task_cfg = resolve_task(cfg.task, task)
    split = split or str(task_cfg.eval_splits[0])
    splits = [str(task_cfg.train_split), *map(str, task_cfg.eval_splits)]
    if split not in splits:
        raise UserError(f"unknown split {split!r} of task {task_cfg.name!r}; valid choices: {', '.join(dict.fromkeys(splits))}")
    eval_task = OmegaConf.merge(task_cfg, {"eval_splits": [split]})
    raw = load_raw_splits(eval_task, data_dir if data_dir else cfg.data.dir, getattr(cfg.data, "cache_dir", None))
    ds = raw[split]
    if split != str(task_cfg.train_split):  # the search evaluated on this seeded subset
        ds = stratified_subset(ds, cfg.data.eval_subset, int(cfg.seed), task_cfg.label_field, int(task_cfg.num_labels) == 1)
    tokens = tokenize_split(ds, loaded.tokenizer, task_cfg, int(cfg.train.max_length))
    return evaluate_model(loaded.model, tokens, loaded.tokenizer, task_cfg, int(cfg.train.eval_batch_size),
                          str(cfg.train.precision))


def task_names() -> list[str]:
    """The tasks of `conf/task/` (the `task=` choices)."""
    from importlib import resources

    return sorted(p.name[:-5] for p in resources.files("prunepeft.conf").joinpath("task").iterdir()
                  if p.name.endswith(".yaml"))


def resolve_task(run_task: DictConfig, task: str | Any | None) -> DictConfig:
    """The run's task config, or another task: a name (`conf/task/<task>.yaml`) or a task config.

    Raises:
        UserError: an unknown task, or one whose number of labels differs from the run's head.
    """
    from importlib import resources

    from prunepeft.config.schema import TaskConfig
    from prunepeft.errors import check_choice

    name = None if task is None else str(task) if isinstance(task, str) else str(task.name)
    if name is None or name == str(run_task.name):
        return run_task
    if isinstance(task, str):
        check_choice("task", name, task_names())
        task = OmegaConf.create(resources.files("prunepeft.conf").joinpath("task", f"{name}.yaml")
                                .read_text(encoding="utf-8"))
    other = OmegaConf.merge(OmegaConf.structured(TaskConfig), task)
    if int(other.num_labels) != int(run_task.num_labels):
        raise UserError(f"task={task!r} has {other.num_labels} labels but the run's head ({run_task.name}) has "
                        f"{run_task.num_labels}; evaluate on a task with the same labels")
    return other


def load_self_contained(path: str | os.PathLike, model: torch.nn.Module | None = None,
                        tokenizer: Any | None = None) -> tuple[torch.nn.Module, Any, dict[str, Any]]:
    """Rebuild the model of a prunepeft-format export: (model, tokenizer, prunepeft_export.json).

    Args:
        path: the export directory.
        model: a local base model to put the units on (default: load the recorded backbone).
        tokenizer: its tokenizer (default: the recorded backbone's).
    """
    from omegaconf import OmegaConf

    from prunepeft.arms.backbone_stage import reprune
    from prunepeft.peft.export import EXPORT_FILE, EXPORT_FORMAT
    from prunepeft.run.io import read_json
    from prunepeft.models.families import get_family
    from prunepeft.models.loading import load_backbone
    from prunepeft.peft.found_config import FoundConfig, build_from_found
    from prunepeft.peft.weights import load_model_weights, load_trained

    path = Path(path)
    meta = read_json(path / EXPORT_FILE)
    if meta.get("format") != EXPORT_FORMAT:
        raise UserError(f"{path / EXPORT_FILE} has format {meta.get('format')!r}; expected {EXPORT_FORMAT!r}")
    model_cfg = OmegaConf.create(meta["model"])
    if model is None or tokenizer is None:
        loaded, loaded_tok = load_backbone(model_cfg, int(meta["num_labels"]), int(meta["seed"]))
        model = loaded if model is None else model
        tokenizer = loaded_tok if tokenizer is None else tokenizer

    load_model_weights(model, path)  # the export of a full fine-tuning run: its trained backbone (else no-op)
    reprune(model, get_family(str(model_cfg.family)), path)  # early backbone pruning (no-op without its file)
    found = FoundConfig.from_json(meta["found_config"], str(path / EXPORT_FILE))
    net = build_from_found(model, get_family(str(model_cfg.family)), found, int(model.config.hidden_size))
    load_trained(net, path)
    net.model.eval()
    return net.model, tokenizer, meta
