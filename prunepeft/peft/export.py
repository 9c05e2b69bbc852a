"""Export a found configuration: as peft adapters where peft can express it, else self-contained.

- **peft** (only lora/dora units): one `LoraConfig` per unit type, `target_modules` = the family's
  query and value paths, `layers_to_transform` = the layers that kept a unit of that type,
  `use_dora` for DoRA, `rank_pattern`/`alpha_pattern` where units differ in size. peft's
  `use_dora` is one flag per config, so a configuration with both LoRA and DoRA units becomes
  two LoRA adapters on one model: `default` (the DoRA units) and `lora_units` (in the `lora_units/`
  subfolder, where peft's `save_pretrained` puts a second adapter), active together. The weights
  are copied into a model built by peft itself and written with `save_pretrained`, so key names
  are peft's own.
- **prunepeft** (any configuration, required once serial units are kept): peft has no bottleneck
  adapters (no serial adapter tuner at all), so the directory holds `prunepeft_export.json` (how to
  rebuild the backbone, the task, the found configuration), the unit and head weights as
  safetensors, and a model card; `load_export` rebuilds the model from it alone.
Both directories appear complete or not at all (written to a temporary directory, then renamed).
"""
from __future__ import annotations

import copy
import os
import re
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn

from prunepeft.errors import UserError
from prunepeft.run.io import atomic_write_json, atomic_write_text, follow_umask, remove_stale_temps, temp_prefix
from prunepeft.models.families import set_site_linear, site_linear, transformer_layers
from prunepeft.peft.supernet import Supernet
from prunepeft.peft.units import UnitId, get_unit_type, unit_key
from prunepeft.peft.wrapper import PeftLinear

# DoRA first: peft's DoRA reads the site output accumulated so far as "W x", so on a layer with
# both units the DoRA adapter must run before the LoRA one to compute what prunepeft computes.
PEFT_TYPES = ("dora", "lora")
FORMATS = ("peft", "prunepeft")
EXPORT_FILE = "prunepeft_export.json"
EXPORT_FORMAT = "prunepeft.export/1"
# peft adapter name (and subfolder) of the LoRA units next to DoRA ones; peft warns about names
# contained in its "lora_" prefix (so not "lora").
SECOND_ADAPTER = "lora_units"
NO_SERIAL = "peft has no bottleneck adapters"


def peft_kinds(unit_ids: list[UnitId], where: str = "") -> list[str]:
    """The unit types of `unit_ids` in peft adapter order (dora, lora), when peft can express them.

    Args:
        unit_ids: the found (active) units.
        where: a path to the library-neutral found_config.json, named in the error message.

    Raises:
        UserError: serial units (peft has no bottleneck adapters), no units, or unknown types.
    """
    hint = f"; the library-neutral description is in {where}" if where else ""
    serial = [unit_key(u) for u in unit_ids if get_unit_type(u[1]).kind == "serial"]
    if serial:
        raise UserError(
            f"the found configuration has serial units ({', '.join(serial)}) that peft cannot express "
            f"({NO_SERIAL}); export them with to=prunepeft (or leave to= out){hint}"
        )
    types = {u[1] for u in unit_ids}
    if not types:
        raise UserError(f"the found configuration has no units; there is nothing to export to peft{hint}")
    unknown = types - set(PEFT_TYPES)
    if unknown:
        raise UserError(f"unit types {sorted(unknown)} have no peft equivalent (exportable: {list(PEFT_TYPES)}){hint}")
    return [t for t in PEFT_TYPES if t in types]


def check_expressible(unit_ids: list[UnitId], where: str = "") -> str:
    """"lora", "dora" or "lora+dora" when peft can express `unit_ids`, else UserError (see peft_kinds)."""
    return "+".join(sorted(peft_kinds(unit_ids, where), key=lambda t: t != "lora"))


def choose_format(unit_ids: list[UnitId]) -> str:
    """`peft` when every unit is LoRA or DoRA, else `prunepeft` (the self-contained format)."""
    try:
        peft_kinds(unit_ids)
    except UserError:
        return "prunepeft"
    return "peft"


def module_name(supernet: Supernet, layer: int, site: str) -> str:
    """Dotted name of a site Linear in the plain (un-wrapped) model, as peft sees it."""
    return f"{supernet.family.layers_path}.{layer}.{supernet.family.sites[site]}"


def lora_config_kwargs(supernet: Supernet, kind: str | None = None) -> dict[str, Any]:
    """Keyword arguments of the peft `LoraConfig` for the supernet's active units of type `kind`.

    Args:
        supernet: the model with its found units.
        kind: "lora" or "dora"; None = the only type present (UserError when there are two).
    """
    kinds = peft_kinds(supernet.active_ids())
    if kind is None:
        if len(kinds) > 1:
            raise UserError("lora and dora units together need two peft adapters: pass kind='lora' or 'dora'")
        kind = kinds[0]
    uids = [u for u in supernet.active_ids() if u[1] == kind]
    sizes = {uid: supernet.unit_sizes(uid) for uid in uids}
    dropouts = {s.lora_dropout for s in sizes.values()}
    if len(dropouts) > 1:
        raise UserError(f"units differ in lora_dropout {sorted(dropouts)}; a peft LoraConfig has one dropout")
    family = supernet.family
    (r, alpha), _ = Counter((s.lora_r, s.lora_alpha) for s in sizes.values()).most_common(1)[0]
    rank_pattern, alpha_pattern, targets = {}, {}, []
    for uid, s in sizes.items():
        t = get_unit_type(uid[1])
        for site in t.sites:
            # Rank pruning: r_new per site, scaling kept at alpha / r_original, i.e. peft's
            # alpha_site / r_new with alpha_site = alpha · r_new / r_original. peft refuses r = 0.
            r_site = t.site_size(s, site)
            if r_site == 0:
                continue
            a_site = s.lora_alpha * r_site / s.lora_r
            targets.append(module_name(supernet, uid[0], site))
            # peft matches pattern keys as `(.*\.)?(key)$` against module names; escape the dots.
            key = re.escape(targets[-1])
            if r_site != r:
                rank_pattern[key] = r_site
            if a_site != alpha:
                alpha_pattern[key] = a_site
    per_site = any(s.site_sizes is not None for s in sizes.values())
    return {
        "task_type": "SEQ_CLS",
        "r": int(r),
        "lora_alpha": float(alpha),
        "lora_dropout": float(dropouts.pop()),
        # After rank pruning a site may be empty while its sibling stays: name the sites exactly.
        "target_modules": targets if per_site else [family.sites[s] for s in get_unit_type(kind).sites],
        "layers_to_transform": None if per_site else sorted({uid[0] for uid in uids}),
        "layers_pattern": None if per_site else family.layers_path.rsplit(".", 1)[-1],
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


def activate_adapters(peft_model: nn.Module, names: list[str]) -> None:
    """Make the LoRA layers of `peft_model` run `names` together, in that order.

    peft's own `set_adapter([...])` refuses a list here: every SEQ_CLS adapter carries a copy of
    the head (`modules_to_save`), and only one such copy may be active. The copies are identical
    in our exports, so the head stays on the first adapter and only the LoRA layers get the list.
    """
    from peft.tuners.lora import LoraLayer

    for module in peft_model.modules():
        if isinstance(module, LoraLayer):
            module.set_adapter(list(names))


def adapter_names(kinds: list[str]) -> dict[str, str]:
    """unit type -> peft adapter name: the first type is `default`, a second one `lora_units`."""
    return {kind: ("default" if i == 0 else SECOND_ADAPTER) for i, kind in enumerate(kinds)}


def to_peft_model(supernet: Supernet, model_id: str | None = None) -> nn.Module:
    """A peft `PeftModel` computing the same function as the supernet's active LoRA/DoRA units.

    Args:
        supernet: the model with its found (trained) units.
        model_id: recorded as `base_model_name_or_path` (the hub id; peft would otherwise record
            the directory the backbone happened to be loaded from).
    """
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError:  # peft is an optional extra
        raise UserError("exporting to peft needs the `peft` package: pip install 'prunepeft[peft]'") from None
    kinds = peft_kinds(supernet.active_ids())
    names = adapter_names(kinds)
    peft_model = get_peft_model(unwrapped_copy(supernet), LoraConfig(**lora_config_kwargs(supernet, kinds[0])))
    for kind in kinds[1:]:
        peft_model.add_adapter(names[kind], LoraConfig(**lora_config_kwargs(supernet, kind)))
    inner = peft_model.base_model.model
    with torch.no_grad():
        for uid in supernet.active_ids():
            name = names[uid[1]]
            for site, branch in supernet.branches(uid):
                target = inner.get_submodule(module_name(supernet, uid[0], site))
                target.lora_A[name].weight.copy_(branch.lora_A.weight)
                target.lora_B[name].weight.copy_(branch.lora_B.weight)
                if hasattr(branch, "lora_magnitude"):
                    target.lora_magnitude_vector[name].weight.copy_(branch.lora_magnitude)
    for config in peft_model.peft_config.values():
        config.base_model_name_or_path = model_id
    if len(kinds) > 1:
        activate_adapters(peft_model, [names[k] for k in kinds])
    peft_model.eval()
    return peft_model


def _check_out(out: Path) -> None:
    """Refuse an `out` that exists and is not a previous export: it is replaced wholesale, so
    `out=.` or `out=<the run dir>` would otherwise delete the user's files."""
    if not out.exists():
        return
    if not out.is_dir():
        raise UserError(f"out={str(out)!r} is a file; choose a directory for the export")
    previous = (out / "adapter_config.json").is_file() or (out / EXPORT_FILE).is_file()
    if any(out.iterdir()) and not previous:
        raise UserError(f"out={str(out)!r} is a non-empty directory that is not a previous export; "
                        "refusing to replace it: choose a new or empty directory")


@contextmanager
def atomic_dir(out_dir: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary directory beside `out_dir` that replaces it when the block succeeds."""
    out = Path(out_dir)
    _check_out(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(out)  # the temp directory of an export that was killed mid-write
    tmp = Path(tempfile.mkdtemp(prefix=temp_prefix(out), dir=out.parent))
    try:
        yield tmp
        # mkdtemp makes 0700 and safetensors.save_file (peft's save_pretrained) 0600: an export is
        # meant to be shared, every file and directory in it as open()/mkdir would make them.
        follow_umask(tmp, tree=True)
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _write_extras(tmp: Path, extra_json: dict[str, Any] | None, card: str | None) -> None:
    for name, obj in (extra_json or {}).items():
        atomic_write_json(tmp / name, obj)
    if card is not None:
        atomic_write_text(tmp / "README.md", card)


def save_peft(supernet: Supernet, tmp: Path, model_id: str | None = None,
              extra_json: dict[str, Any] | None = None, card: str | None = None) -> list[str]:
    """Write the peft export into the (empty) directory `tmp`; return the adapter names written."""
    peft_model = to_peft_model(supernet, model_id)
    # Embeddings are never trained here; "auto" would look the base model up on the hub.
    peft_model.save_pretrained(str(tmp), save_embedding_layers=False)
    _write_extras(tmp, extra_json, card)  # our card replaces peft's blank template
    return list(peft_model.peft_config)


def export_peft(
    supernet: Supernet, out_dir: str | os.PathLike, model_id: str | None = None,
    extra_json: dict[str, Any] | None = None, card: str | None = None,
) -> Path:
    """Write peft's save_pretrained layout (`adapter_config.json` + `adapter_model.safetensors`).

    With LoRA and DoRA units, the DoRA adapter is at the top level (`default`) and the LoRA one in
    `lora_units/`. `extra_json` ({file name: object}) and `card` (README.md text) are written beside.
    Load with `PeftModel.from_pretrained(<base model>, out_dir)` (plus `load_adapter(out_dir/lora_units)`
    and `activate_adapters` for a mixed configuration).
    """
    with atomic_dir(out_dir) as tmp:
        save_peft(supernet, tmp, model_id, extra_json, card)
    return Path(out_dir)


def save_self_contained(supernet: Supernet, tmp: Path, meta: dict[str, Any],
                        extra_json: dict[str, Any] | None = None, card: str | None = None) -> None:
    """Write the prunepeft format into `tmp`: `prunepeft_export.json`, units and head safetensors.

    Args:
        meta: {"model": ModelConfig as a dict, "num_labels", "seed", "task": TaskConfig as a dict,
            "max_length", "found_config": found_config.json content, ...}; `seed` rebuilds a tiny
            random backbone exactly (pretrained ones come from `model`'s hub id or local path).
    """
    from prunepeft.peft.weights import save_trained

    atomic_write_json(tmp / EXPORT_FILE, {"format": EXPORT_FORMAT, **meta})
    save_trained(supernet, tmp)
    _write_extras(tmp, extra_json, card)
