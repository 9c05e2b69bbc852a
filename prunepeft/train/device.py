"""Device and precision: CUDA when available, bf16 autocast on CUDA, plain fp32 on CPU.

bf16 needs no gradient scaler (unlike fp16), which keeps the loop free of scaler bookkeeping and
means gradients seen by callbacks are already the true, unscaled gradients.
"""
from __future__ import annotations

import contextlib
import logging
import math

import torch

from prunepeft.errors import UserError, check_choice

log = logging.getLogger(__name__)

PRECISIONS = ("auto", "bf16", "fp32")
LR_KEYS = ("lr_peft", "lr_head", "lr_backbone")  # the learning rates of the parameter groups


def resolve_device(name: str = "auto") -> torch.device:
    """Pick the device: `auto` = CUDA when available, else CPU; or an explicit `cpu`/`cuda[:i]`.

    Raises:
        UserError: the name is not a device, or CUDA was asked for but is not available.
    """
    if name in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError) as err:
        raise UserError(f"unknown train.device {name!r}; valid choices: auto, cpu, cuda, cuda:<i>") from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"train.device={name!r} but CUDA is not available; use train.device=auto or cpu")
    if device.type not in ("cpu", "cuda"):
        raise UserError(f"unsupported train.device {name!r}; valid choices: auto, cpu, cuda, cuda:<i>")
    return device


def resolve_precision(precision: str, device: torch.device) -> str:
    """`auto` -> `bf16` on CUDA (when the GPU supports it), `fp32` elsewhere.

    An explicit `bf16` on CPU falls back to fp32: CPU autocast is slower than fp32 on most CPUs
    and changes numerics of the deterministic CPU tests.
    """
    check_choice("train.precision", precision, PRECISIONS)
    if device.type != "cuda":
        if precision == "bf16":
            log.info("train.precision=bf16 ignored on %s: autocast is only used on CUDA", device)
        return "fp32"
    if precision == "auto":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return precision


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """The autocast context for a forward pass (a no-op context for fp32)."""
    if resolve_precision(precision, device) == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def model_device(model: torch.nn.Module) -> torch.device:
    """The device the model's first parameter lives on (CPU for a parameter-less module)."""
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


def check_train_config(train_cfg) -> None:
    """The cheap checks of a TrainConfig, run before a command writes anything (not mid-training).

    Raises:
        UserError: unknown precision or device, non-positive epochs/batch sizes, a batch size
            that `grad_accum` does not divide, or a learning rate that is not finite and > 0 (a
            negative one would train by gradient ascent and end `done` at chance).
    """
    check_choice("train.precision", str(train_cfg.precision), PRECISIONS)
    for key in LR_KEYS:
        value = getattr(train_cfg, key, None)
        if value is None:
            continue
        try:
            rate = float(value)
        except (TypeError, ValueError):
            raise UserError(f"train.{key} must be a number > 0, got {value!r}") from None
        if not math.isfinite(rate) or rate <= 0:
            raise UserError(f"train.{key} must be finite and > 0, got {value}")
    resolve_device(train_cfg.device)
    for key in ("epochs", "batch_size", "eval_batch_size", "grad_accum", "max_length"):
        if int(getattr(train_cfg, key)) < 1:
            raise UserError(f"train.{key} must be >= 1, got {getattr(train_cfg, key)}")
    if train_cfg.batch_size % train_cfg.grad_accum:
        raise UserError(f"train.batch_size={train_cfg.batch_size} must be a multiple of "
                        f"train.grad_accum={train_cfg.grad_accum}")
