"""Export a found configuration as a `peft` LoRA/DoRA adapter (DESIGN.md "Commands": export).

Only parallel units map onto peft: a `LoraConfig` with `target_modules` = the family's query and
value paths, `layers_to_transform` = the layers that kept a unit, `use_dora` for DoRA, and
`rank_pattern`/`alpha_pattern` where units differ in size. The weights are copied into a peft
model built by peft itself and written with `save_pretrained`, so key names are peft's own.
Serial units (adapter, houlsby) have no peft equivalent: they are reported, not approximated.
"""
from __future__ import annotations

import copy
import os
import re
import shutil
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import torch
from torch import nn

from prunepeft.errors import UserError
from prunepeft.io import atomic_write_json
from prunepeft.models.families import set_site_linear, site_linear, transformer_layers
from prunepeft.peft.supernet import Supernet
from prunepeft.peft.units import UnitId, get_unit_type, unit_key
from prunepeft.peft.wrapper import PeftLinear

PEFT_TYPES = ("lora", "dora")


def check_expressible(unit_ids: list[UnitId], where: str = "") -> str:
    """Return "lora" or "dora" when peft can express `unit_ids`, else raise UserError.

    Args:
        unit_ids: the found (active) units.
        where: a path to the library-neutral found_config.json, named in the error message.
    """
    hint = f"; the library-neutral description is in {where}" if where else ""
    serial = [unit_key(u) for u in unit_ids if get_unit_type(u[1]).kind == "serial"]
    if serial:
        raise UserError(
            f"the found configuration has serial units ({', '.join(serial)}) that a peft LoraConfig "
            f"cannot express (peft has no bottleneck adapters); only {'/'.join(PEFT_TYPES)} units export{hint}"
        )
    types = {u[1] for u in unit_ids}
    if not types:
        raise UserError(f"the found configuration has no units; there is nothing to export to peft{hint}")
    unknown = types - set(PEFT_TYPES)
    if unknown:
        raise UserError(f"unit types {sorted(unknown)} have no peft equivalent (exportable: {list(PEFT_TYPES)}){hint}")
    if len(types) > 1:
        raise UserError(
            f"lora and dora units together are not expressible as ONE peft LoraConfig (use_dora is global){hint}"
        )
    return types.pop()


def module_name(supernet: Supernet, layer: int, site: str) -> str:
    """Dotted name of a site Linear in the plain (un-wrapped) model, as peft sees it."""
    return f"{supernet.family.layers_path}.{layer}.{supernet.family.sites[site]}"


def lora_config_kwargs(supernet: Supernet) -> dict[str, Any]:
    """Keyword arguments of the peft `LoraConfig` equivalent to the supernet's active units."""
    uids = supernet.active_ids()
    kind = check_expressible(uids)
    sizes = {uid: supernet.unit_sizes(uid) for uid in uids}
    dropouts = {s.lora_dropout for s in sizes.values()}
    if len(dropouts) > 1:
        raise UserError(f"units differ in lora_dropout {sorted(dropouts)}; a peft LoraConfig has one dropout")
    family = supernet.family
    (r, alpha), _ = Counter((s.lora_r, s.lora_alpha) for s in sizes.values()).most_common(1)[0]
    rank_pattern, alpha_pattern = {}, {}
    for uid, s in sizes.items():
        for site in get_unit_type(uid[1]).sites:
            # peft matches pattern keys as `(.*\.)?(key)$` against module names; escape the dots.
            key = re.escape(module_name(supernet, uid[0], site))
            if s.lora_r != r:
                rank_pattern[key] = s.lora_r
            if s.lora_alpha != alpha:
                alpha_pattern[key] = s.lora_alpha
    return {
        "task_type": "SEQ_CLS",
        "r": int(r),
        "lora_alpha": float(alpha),
        "lora_dropout": float(dropouts.pop()),
        "target_modules": [family.sites[s] for s in get_unit_type(kind).sites],
        "layers_to_transform": sorted({uid[0] for uid in uids}),
        "layers_pattern": family.layers_path.rsplit(".", 1)[-1],
        "use_dora": kind == "dora",
        "rank_pattern": rank_pattern,
        "alpha_pattern": alpha_pattern,
        # task_type SEQ_CLS already makes peft save `classifier` and `score`; add the rest of the
        # head (DeBERTa's pooler) so the exported adapter carries the whole trained head.
        "modules_to_save": [p for p in family.head_prefixes if p not in ("classifier", "score")] or None,
        "bias": "none",
    }


def unwrapped_copy(supernet: Supernet) -> nn.Module:
    """A deep copy of the model with every PEFT wrapper replaced by its base Linear (head kept)."""
    model = copy.deepcopy(supernet.model)
    for layer in transformer_layers(model, supernet.family):
        for site in supernet.family.sites:
            module = site_linear(layer, supernet.family, site)
            if isinstance(module, PeftLinear):
                set_site_linear(layer, supernet.family, site, module.base)
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def to_peft_model(supernet: Supernet, model_id: str | None = None) -> nn.Module:
    """A peft `PeftModel` computing the same function as the supernet's active LoRA/DoRA units."""
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError:  # peft is an optional extra
        raise UserError("exporting to peft needs the `peft` package: pip install 'prunepeft[peft]'") from None
    config = LoraConfig(**lora_config_kwargs(supernet))
    if model_id:
        config.base_model_name_or_path = model_id
    peft_model = get_peft_model(unwrapped_copy(supernet), config)
    inner = peft_model.base_model.model
    with torch.no_grad():
        for uid in supernet.active_ids():
            for site, branch in supernet.branches(uid):
                target = inner.get_submodule(module_name(supernet, uid[0], site))
                target.lora_A["default"].weight.copy_(branch.lora_A.weight)
                target.lora_B["default"].weight.copy_(branch.lora_B.weight)
                if hasattr(branch, "lora_magnitude"):
                    target.lora_magnitude_vector["default"].weight.copy_(branch.lora_magnitude)
    peft_model.eval()
    return peft_model


def _check_out(out: Path) -> None:
    """Refuse an `out` that exists and is not a previous export: it is replaced wholesale, so
    `out=.` or `out=<the run dir>` would otherwise delete the user's files."""
    if not out.exists():
        return
    if not out.is_dir():
        raise UserError(f"out={str(out)!r} is a file; choose a directory for the peft adapter")
    if any(out.iterdir()) and not (out / "adapter_config.json").is_file():
        raise UserError(f"out={str(out)!r} is a non-empty directory that is not a previous peft export; "
                        "refusing to replace it: choose a new or empty directory")


def export_peft(
    supernet: Supernet, out_dir: str | os.PathLike, model_id: str | None = None,
    extra_json: dict[str, Any] | None = None,
) -> Path:
    """Write `adapter_config.json` + `adapter_model.safetensors` (peft's save_pretrained layout).

    The directory appears complete or not at all (written to a temp dir, then renamed), together
    with `extra_json` ({file name: object}, e.g. the found_config.json).
    Load it with `PeftModel.from_pretrained(AutoModelForSequenceClassification..., out_dir)`.
    """
    out = Path(out_dir)
    _check_out(out)
    peft_model = to_peft_model(supernet, model_id)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        peft_model.save_pretrained(str(tmp))
        for name, obj in (extra_json or {}).items():
            atomic_write_json(tmp / name, obj)
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
