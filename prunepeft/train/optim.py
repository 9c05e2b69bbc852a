"""AdamW over named parameter groups (PEFT units, head, backbone) with a linear warm-up/decay.

Each group keeps its own learning rate (`train.lr_peft`, `train.lr_head`, `train.lr_backbone`):
the authors' released code built its optimizer in a way that ignored them; we honour them.
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR


def build_param_groups(
    *,
    peft: Iterable[nn.Parameter] = (),
    head: Iterable[nn.Parameter] = (),
    backbone: Iterable[nn.Parameter] = (),
    train_cfg: Any,
) -> list[dict[str, Any]]:
    """Optimizer parameter groups, one per non-empty kind, each with its own learning rate.

    A parameter listed twice is kept in its first group only (AdamW rejects duplicates), and
    parameters that do not require grad are dropped (frozen or inactive units).

    Args:
        peft: PEFT unit parameters (lr = train_cfg.lr_peft).
        head: classifier head parameters (lr = train_cfg.lr_head).
        backbone: backbone parameters for full fine-tuning (lr = train_cfg.lr_backbone).
        train_cfg: a TrainConfig (or DictConfig) with lr_* and weight_decay.

    Returns:
        A list of dicts `{"name", "params", "lr", "weight_decay"}`.
    """
    seen: set[int] = set()
    groups = []
    for name, params, lr in (
        ("peft", peft, train_cfg.lr_peft),
        ("head", head, train_cfg.lr_head),
        ("backbone", backbone, train_cfg.lr_backbone),
    ):
        kept = []
        for p in params:
            if p.requires_grad and id(p) not in seen:
                seen.add(id(p))
                kept.append(p)
        if kept:
            groups.append({"name": name, "params": kept, "lr": float(lr),
                           "weight_decay": float(train_cfg.weight_decay)})
    return groups


def build_optimizer(param_groups: list[dict[str, Any]]) -> torch.optim.AdamW:
    """AdamW over the groups; each group's `lr` and `weight_decay` are used as given."""
    if not param_groups:
        raise ValueError("no trainable parameters: every parameter group is empty")
    return torch.optim.AdamW(param_groups)


def linear_schedule(optimizer: torch.optim.Optimizer, total_steps: int, warmup_ratio: float) -> LambdaLR:
    """Linear warm-up over ceil(warmup_ratio * total_steps) steps, then linear decay to 0.

    The multiplier applies to every group's own base learning rate.
    """
    warmup = math.ceil(warmup_ratio * total_steps)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    return LambdaLR(optimizer, factor)


def trainable(groups: list[dict[str, Any]]) -> list[nn.Parameter]:
    """All parameters of the groups (what gets clipped)."""
    return [p for g in groups for p in g["params"]]
