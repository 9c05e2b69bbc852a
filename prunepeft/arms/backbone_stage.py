"""Early pruning of the backbone in a run (opt-in, `backbone_prune.enabled=true`; issue 14 Deliver 4).

Light-PEFT's order, re-implemented on our pieces (prunepeft.arms.backbone_prune):

1. **Estimation** on a separately loaded backbone: the full supernet's units, the head and the
   head/neuron masks train together for `backbone_prune.steps` optimizer steps (null: max(100,
   ⌈0.04 × the retrain's steps⌉)), with λ·Σ|m| (λ = `backbone_prune.l1`) through `L1Penalty`.
   The estimation model is then thrown away (its units and learned mask values too).
2. **Selection**: heads per layer, neurons globally (`backbone_prune.heads`, `backbone_prune.ffn`),
   written to `<run>/backbone_prune.json`.
3. **Removal** on the run's fresh backbone, before any PEFT unit is injected; the search, its
   retrain, `load_run` and `export` all re-prune a freshly loaded backbone from that file, so a
   resume never re-estimates.

The budget B stays `budget.percent` of the UNPRUNED base (absolute params): `base_before` is kept on
the model (`model.prunepeft_base_before`) for `stages.budget_of`.
"""
from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any, Optional

from prunepeft.data import stratified_subset
from prunepeft.models import get_family, load_backbone, start_regression_head
from prunepeft.arms.backbone_prune import FILE, BackboneMasks, KeptStructures, L1Penalty, estimation_steps, prune, select
from prunepeft.arms.backbone_prune import summary_fields as _summary_fields
from prunepeft.models.families import base_model_parameter_count
from prunepeft.arms.light_peft import retrain_steps
from prunepeft.pruning.arms import BASE_BEFORE  # set on a pruned model: its unpruned base count
from prunepeft.seed import seed_everything

log = logging.getLogger(__name__)



def enabled(section: Any) -> bool:
    """Whether the `backbone_prune` section (None in configs written before it existed) turns it on."""
    return bool(section is not None and section.enabled)


def reprune(model: Any, family: Any, run_dir: Path | str) -> Optional[KeptStructures]:
    """Prune a freshly loaded backbone as the run at `run_dir` did (no-op without backbone_prune.json)."""
    path = Path(run_dir) / FILE
    if not path.exists():
        return None
    kept = KeptStructures.load(path)
    before = base_model_parameter_count(model, family)
    prune(model, family, kept)
    setattr(model, BASE_BEFORE, before)
    return kept


def load_run_backbone(model_cfg: Any, num_labels: int, seed: int, run_dir: Path | str) -> tuple[Any, Any]:
    """`load_backbone`, then re-pruned like the run at `run_dir` (for retrain, `load_run`, export)."""
    model, tokenizer = load_backbone(model_cfg, num_labels, seed)
    reprune(model, get_family(model_cfg.family), run_dir)
    return model, tokenizer


def reprune_found(model: Any, family: Any, method: Any, source_run: Any) -> Optional[KeptStructures]:
    """`baseline method=found run=<dir>`: prune a fresh backbone as the search at `run` did.

    A configuration found on a pruned backbone only fits that backbone (its units were sized on
    it), so its retrain re-prunes from the run's backbone_prune.json, exactly as the search's own
    retrain does (`stages.retrain`): call it right after `load_backbone`, before the units are
    built, so the units draw the same random numbers. No-op for other methods and unpruned runs.
    """
    if str(method) != "found" or not source_run:
        return None
    return reprune(model, family, source_run)


def source_settings(run_dir: Path | str) -> tuple[Optional[float], Optional[float]]:
    """(heads, ffn) fractions a pruned run used: its summary.json `backbone`, else its run.json config."""
    from prunepeft.run import outputs
    from prunepeft.run.io import read_json

    for name, keys in ((outputs.SUMMARY, ("backbone",)), (outputs.RUN_JSON, ("config", "backbone_prune"))):
        path = Path(run_dir) / name
        record: Any = read_json(path) if path.is_file() else None
        for key in keys:
            record = record.get(key) if isinstance(record, dict) else None
        if isinstance(record, dict) and record.get("heads") is not None:
            return float(record["heads"]), float(record["ffn"])
    return None, None


def found_record(method: Any, source_run: Any, model: Any, base_after: int) -> dict:
    """The baseline summary's `{"backbone": ...}` for `method=found` on a pruned run, else {}.

    Same fields as a pruned search's (`summary_fields`), so `prunepeft report` groups the retrain
    with the pruned runs and never with unpruned ones.
    """
    if str(method) != "found" or not source_run or not (Path(source_run) / FILE).exists():
        return {}
    heads, ffn = source_settings(source_run)
    before = int(getattr(model, BASE_BEFORE, base_after))
    record = _summary_fields(before, int(base_after), KeptStructures.load(Path(source_run) / FILE), heads or 0.0, ffn or 0.0)
    if heads is None:  # the source run recorded no fractions: the kept counts still say what was pruned
        record["heads"] = record["ffn"] = None
    return {"backbone": record}


def estimate(bp: Any, settings: Any, train_ds: Any, run: Any = None) -> KeptStructures:
    """Steps 1-2 of the module docstring on a separately loaded backbone; returns the kept structures.

    `bp`: the `backbone_prune` section; `settings`: the run's stage settings (`config.typed.RunSettings`:
    the seed, the model and search space, the training loop, the retrain's epochs).
    """
    from prunepeft.peft import Supernet, UnitSizes
    from prunepeft.train import build_param_groups, fit

    seed, model_settings, loop, task = settings.seed, settings.model, settings.train.loop, settings.train.task
    seed_everything(seed)
    model, tokenizer = load_backbone(model_settings.model, model_settings.num_labels, seed)
    family = get_family(model_settings.family)
    start_regression_head(model, family, train_ds["labels"], loop.regression_head_bias)  # as every fresh head
    masks = BackboneMasks.install(model, family)  # before the units: the hooks sit on blocks, not Linears
    supernet = Supernet.build(model, family, list(model_settings.search_space), UnitSizes.from_model(model_settings.model),
                              int(model.config.hidden_size))
    retrain_epochs = settings.search.retrain_epochs  # search.retrain_epochs, else train.epochs
    steps = (int(bp.steps) if bp.steps is not None
             else estimation_steps(retrain_steps(retrain_epochs, int(loop.batch_size), len(train_ds))))
    rows = steps * int(loop.batch_size)
    epochs = 1
    if rows < len(train_ds):
        train_ds = stratified_subset(train_ds, rows, seed, "labels", model_settings.num_labels == 1,
                                     key="backbone_prune.steps")
    else:
        epochs = math.ceil(rows / len(train_ds))
    groups = build_param_groups(peft=supernet.peft_parameters(), head=supernet.head_parameters(), train_cfg=loop)
    groups.append({"name": "backbone_masks", "params": list(masks.parameters()), "weight_decay": 0.0,
                   "lr": float(bp.mask_lr if bp.mask_lr is not None else loop.lr_peft)})
    log.info("backbone pruning: estimating head/neuron masks for %d steps (%d epoch(s) of %d rows)",
             steps, epochs, len(train_ds))
    fit(model, groups, train_ds, {}, tokenizer, train_cfg=loop, task=task, epochs=epochs, seed=seed,
        callbacks=[L1Penalty(masks, float(bp.l1))], run=run, phase="backbone_estimate")
    return select(masks, float(bp.heads), float(bp.ffn))


def prepare(model: Any, bp: Any, settings: Any, train_ds: Any, run: Any) -> Optional[KeptStructures]:
    """Prune the run's fresh backbone in place (estimating first unless backbone_prune.json exists).

    `bp`: the `backbone_prune` section (None or off: nothing to do, returns None); `settings`: the
    run's stage settings (`estimate`). Call before PEFT units are injected.
    """
    if not enabled(bp):
        return None
    path = run.file(FILE)
    if not path.exists():
        kept = estimate(bp, settings, train_ds, run=None)  # run.json does not exist yet: no events
        kept.save(path)
    return reprune(model, get_family(settings.model.family), run.path)


def summary_fields(bp: Any, model: Any, base_after: int, run_dir: Path | str) -> Optional[dict]:
    """summary.json's `backbone` entry of a pruned run (None when the run did not prune its backbone).

    `base_after`: the pruned model's base count (count_parameters(...).base).
    """
    path = Path(run_dir) / FILE
    if not enabled(bp) or not path.exists():  # bp: the `backbone_prune` section
        return None
    before = int(getattr(model, BASE_BEFORE, base_after))
    return _summary_fields(before, int(base_after), KeptStructures.load(path), float(bp.heads), float(bp.ffn))


def validate(bp: Any, family: str) -> None:
    """The cheap checks of `backbone_prune.*` (before the run directory is written)."""
    from prunepeft.errors import UserError
    from prunepeft.arms.backbone_prune import layout

    if not enabled(bp):  # bp: the `backbone_prune` section; family: `model.family`
        return
    for key in ("heads", "ffn"):
        if not 0.0 <= float(bp[key]) < 1.0:
            raise UserError(f"backbone_prune.{key} must be in [0, 1), got {bp[key]}")
    if float(bp.l1) < 0 or (bp.steps is not None and int(bp.steps) < 1):
        raise UserError("backbone_prune.l1 must be >= 0 and backbone_prune.steps >= 1 (or null)")
    layout(get_family(family))  # refuses families without a known layout (bert, roberta, llama, qwen2)
