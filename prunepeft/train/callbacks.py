"""Callbacks: the explicit places where the search looks inside the training loop.

The loop calls, in this order, for every optimizer step:

    for each micro-batch of the step (train.grad_accum of them):
        on_train_batch_start(batch)       # batch on the device, before the forward pass
        forward + backward                # activation hooks (Supernet.set_delta_hook) fire here
    on_before_optimizer_step(step)        # grads accumulated and unscaled, BEFORE clipping:
                                          # the |g| and |w.g| of the paper's Table 1 criteria
    clip_grad_norm_, optimizer.step(), scheduler.step(), zero_grad
    on_step_loss(step, loss, rows)        # the step's mean train loss over its rows
    on_step_end(step, total_steps)        # after the update (snapshots for the warm-up)

and after each epoch's evaluation `on_epoch_end(epoch, metrics)`. Steps and epochs count from 1.
Evaluation runs with `model.eval()` under `torch.no_grad()`, so an activation hook can skip eval
batches by checking `model.training`.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any


class Callback:
    """Base class: every hook is a no-op; override the ones you need."""

    def on_train_batch_start(self, batch: dict[str, Any]) -> None:
        """Called with each training micro-batch (tensors already on the device)."""

    def on_before_optimizer_step(self, step: int) -> None:
        """Called after backward and gradient accumulation, before clipping and the update."""

    def on_step_loss(self, step: int, loss: float, rows: int) -> None:
        """Called after an applied update with the step's mean train loss over its `rows` rows."""

    def on_step_end(self, step: int, total_steps: int) -> None:
        """Called after optimizer and scheduler stepped; `step` in 1..total_steps."""

    def on_epoch_end(self, epoch: int, metrics: dict[str, dict[str, float]]) -> None:
        """Called after each epoch with its eval metrics ({} when the epoch was not evaluated)."""


class CallbackList(Callback):
    """Fan one call out to several callbacks, in the order given."""

    def __init__(self, callbacks: Iterable[Callback] = ()) -> None:
        self.callbacks = list(callbacks)

    def on_train_batch_start(self, batch: dict[str, Any]) -> None:
        for cb in self.callbacks:
            cb.on_train_batch_start(batch)

    def on_before_optimizer_step(self, step: int) -> None:
        for cb in self.callbacks:
            cb.on_before_optimizer_step(step)

    def on_step_loss(self, step: int, loss: float, rows: int) -> None:
        for cb in self.callbacks:  # added after the other hooks: duck-typed callbacks may lack it
            hook = getattr(cb, "on_step_loss", None)
            if hook is not None:
                hook(step, loss, rows)

    def on_step_end(self, step: int, total_steps: int) -> None:
        for cb in self.callbacks:
            cb.on_step_end(step, total_steps)

    def on_epoch_end(self, epoch: int, metrics: dict[str, dict[str, float]]) -> None:
        for cb in self.callbacks:
            cb.on_epoch_end(epoch, metrics)
