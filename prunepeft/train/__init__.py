"""The one training/evaluation loop (AdamW per-group lrs, schedule, grad accumulation, AMP, callbacks)."""
from prunepeft.train.callbacks import Callback, CallbackList
from prunepeft.train.device import autocast, check_train_config, resolve_device, resolve_precision
from prunepeft.train.loop import FitResult, evaluate, fit
from prunepeft.train.optim import build_optimizer, build_param_groups, linear_schedule

__all__ = [
    "Callback", "CallbackList", "FitResult", "autocast", "check_train_config", "build_optimizer", "build_param_groups",
    "evaluate", "fit", "linear_schedule", "resolve_device", "resolve_precision",
]
