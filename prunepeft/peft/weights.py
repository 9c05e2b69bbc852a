"""The trained weights of a supernet, its active units and the task head, saved and loaded one way.

One key scheme wherever they are kept: a unit tensor as `"<layer>:<type>.<site>.<param>"`
(`Supernet.state_dict_units`), a head tensor as `"head::<model parameter name>"`.

- `trained_tensors` / `load_trained_tensors`: the scheme itself. The search's checkpoint keeps
  these tensors in one file per generation (plus the rank masks; `prunepeft.pruning.checkpoint`).
- `save_trained` / `load_trained`: a directory's `units.safetensors` + `head.safetensors`
  (`prunepeft.run.outputs.UNITS` / `HEAD`), the head file without the prefix: the layout every
  finished run and every self-contained export has written, so old ones still load. Used by the
  search's retrain, the baseline, `load_run` and the export.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save

from prunepeft.run import outputs
from prunepeft.errors import UserError
from prunepeft.run.io import atomic_write_bytes, read_run_file
from prunepeft.models.families import head_parameters

HEAD_PREFIX = "head::"


def trained_tensors(supernet: Any) -> dict[str, torch.Tensor]:
    """CPU copies of the active units' tensors and the head's, in the one key scheme."""
    head = {f"{HEAD_PREFIX}{name}": p.detach().cpu().clone() for name, p in head_parameters(supernet.model, supernet.family)}
    return {**supernet.state_dict_units(), **head}


def load_trained_tensors(supernet: Any, tensors: Mapping[str, torch.Tensor], where: str = "the weights") -> None:
    """Copy `tensors` (keys as `trained_tensors` makes them) into `supernet`'s active units and head.

    Raises:
        UserError: the unit keys are not exactly the active units', the head keys not exactly the
            model head's, or a shape differs (`where` names the source in the message).
    """
    units = {k: v for k, v in tensors.items() if not k.startswith(HEAD_PREFIX)}
    head = {k[len(HEAD_PREFIX):]: v for k, v in tensors.items() if k.startswith(HEAD_PREFIX)}
    supernet.load_state_dict_units(units)
    params = dict(head_parameters(supernet.model, supernet.family))
    if set(head) != set(params):
        raise UserError(f"head weights in {where} have keys {sorted(head)}, the model's head has {sorted(params)}")
    with torch.no_grad():
        for name, tensor in head.items():
            if tuple(params[name].shape) != tuple(tensor.shape):
                raise UserError(f"head weight {name!r} in {where} has shape {tuple(tensor.shape)}, "
                                f"expected {tuple(params[name].shape)}")
            params[name].copy_(tensor.to(params[name].device, params[name].dtype))


def save_trained(supernet: Any, directory: str | os.PathLike) -> None:
    """Write `units.safetensors` and `head.safetensors` into `directory` (each atomic)."""
    directory = Path(directory)
    tensors = trained_tensors(supernet)
    units = {k: v for k, v in tensors.items() if not k.startswith(HEAD_PREFIX)}
    head = {k[len(HEAD_PREFIX):]: v for k, v in tensors.items() if k.startswith(HEAD_PREFIX)}
    atomic_write_bytes(directory / outputs.UNITS, save(units))
    atomic_write_bytes(directory / outputs.HEAD, save(head))


def load_trained(supernet: Any, directory: str | os.PathLike) -> None:
    """Load what `save_trained` wrote into `directory` (the supernet built with the same units).

    Raises:
        UserError: see `load_trained_tensors`; a missing or damaged file (`prunepeft.run.io.RunFileError`).
    """
    directory = Path(directory)
    units = read_run_file(directory / outputs.UNITS, "safetensors")  # the one guard (prunepeft.run.io)
    head = {f"{HEAD_PREFIX}{k}": v for k, v in read_run_file(directory / outputs.HEAD, "safetensors").items()}
    load_trained_tensors(supernet, {**units, **head}, where=str(directory))


def save_model_weights(model: Any, directory: str | os.PathLike) -> None:
    """Write every weight of `model` (a plain backbone + head, no units) as `model.safetensors`.

    A full fine-tuning baseline trains the backbone itself: units + head cannot describe it.
    """
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    atomic_write_bytes(Path(directory) / outputs.MODEL, save(tensors))


def load_model_weights(model: Any, directory: str | os.PathLike) -> bool:
    """Load `model.safetensors` of `directory` into `model` (before any unit is injected); False
    when there is none (a run that trained units and head only).

    Raises:
        UserError: the file's keys or shapes are not the model's.
    """
    from safetensors.torch import load_file

    path = Path(directory) / outputs.MODEL
    if not path.is_file():
        return False
    tensors = load_file(str(path))
    own = model.state_dict()
    if set(tensors) != set(own) or any(tuple(own[k].shape) != tuple(v.shape) for k, v in tensors.items()):
        raise UserError(f"{path} does not hold this model's weights (keys or shapes differ); "
                        "was it written for another backbone?")
    model.load_state_dict(tensors)
    return True
