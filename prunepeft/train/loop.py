"""The one training/evaluation loop used by every phase (warm-up, search rounds, retrain, baselines).

Read it top to bottom: seed -> loader -> AdamW + linear schedule -> for each epoch: optimizer steps
of `grad_accum` micro-batches (callbacks around backward, clip, step) -> evaluate every eval split.
`train.batch_size` is the batch per optimizer step; `grad_accum` splits it into micro-batches, so
changing grad_accum saves memory without changing the optimisation.
"""
from __future__ import annotations

import math
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from prunepeft.data import make_loader
from prunepeft.errors import UserError
from prunepeft.metrics import compute_metrics
from prunepeft.seed import seed_everything
from prunepeft.train import distributed
from prunepeft.train.callbacks import Callback, CallbackList
from prunepeft.train.device import autocast, model_device, resolve_device
from prunepeft.train.optim import build_optimizer, linear_schedule, trainable


class NonFiniteLoss(RuntimeError):
    """Training diverged: a step's loss or gradient norm is NaN/inf (beyond `train.max_nonfinite_steps`).

    Not a UserError: the inputs were valid; the run is marked `failed` and the command exits 1.
    """


def _all_finite(flag: bool, device: torch.device) -> bool:
    """`flag` agreed by every rank (under data parallelism one rank's NaN must stop all, or they hang)."""
    if distributed.active():
        t = torch.tensor([1.0 if flag else 0.0], device=device)
        torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MIN)
        return bool(t.item() > 0)
    return flag


def _step_totals(loss_sum: float, rows: int, finite: bool, device: torch.device) -> tuple[float, int, bool]:
    """(Σ loss·rows, rows, all finite) of one optimizer step over every rank (one all-reduce)."""
    if not distributed.active():
        return loss_sum, rows, finite
    t = torch.tensor([loss_sum, float(rows), 0.0 if finite else 1.0], device=device, dtype=torch.float64)
    distributed.all_reduce_sum(t)
    return float(t[0]), int(t[1]), bool(t[2] == 0)


def _weights_finite(params: list[torch.Tensor]) -> bool:
    """All trained weights finite (one fused max-abs per tensor: it cannot overflow like a 2-norm)."""
    if not params:
        return True
    return bool(torch.isfinite(torch.stack(torch._foreach_norm([p.detach() for p in params], math.inf))).all())


def _diverged(what: str, phase: str, step: int, epoch: int, optimizer, train_cfg, allowed: int | None) -> NonFiniteLoss:
    """The one message for a diverged run: where (phase, step) and with which learning rates."""
    lrs = ", ".join(f"train.{k}={getattr(train_cfg, k):g}" for k in ("lr_peft", "lr_head", "lr_backbone")
                    if getattr(train_cfg, k, None) is not None)
    current = ", ".join(f"{g['lr']:g}" for g in optimizer.param_groups)
    return NonFiniteLoss(f"training diverged: {what} in phase {phase!r} at step {step} (epoch {epoch}); "
                         f"{lrs} (scheduled now: {current}); lower the learning rates"
                         + ("" if allowed is None else  # overflowed weights: skipping cannot help
                            f" (train.max_nonfinite_steps={allowed} skipped steps used up)" if allowed else
                            ", or allow skipped steps with train.max_nonfinite_steps=N"))


@dataclass
class FitResult:
    """What `fit` returns. Epochs count from 1; `best_epoch` is 0 when nothing was evaluated."""

    history: list[dict[str, Any]]  # per epoch: epoch, train_loss, lr, metrics {split: {metric: v}}
    last: dict[str, dict[str, float]]  # the LAST evaluated epoch's metrics: the headline (DESIGN 8)
    best: dict[str, dict[str, float]] = field(default_factory=dict)  # by primary metric, 1st split
    best_epoch: int = 0
    examples_seen: int = 0
    steps: int = 0
    wall_s: float = 0.0
    eval_examples: int = 0  # rows of every evaluation pass (forward only): the cost of the dev metric


def _to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def _chunks(loader: Iterable, size: int) -> Iterator[list]:
    """Group micro-batches into optimizer steps (the last step of an epoch may be shorter)."""
    chunk: list = []
    for item in loader:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _progress(enabled: bool) -> Progress:
    """A rich progress bar; off when disabled or stdout is not a terminal (logs stay clean)."""
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[info]}"), TimeRemainingColumn())
    return Progress(*columns, transient=True, disable=not (enabled and sys.stdout.isatty()))


@torch.no_grad()
def evaluate(model: torch.nn.Module, ds, tokenizer, task, batch_size: int, precision: str = "auto") -> dict[str, float]:
    """The task's metrics of `model` on `ds` (argmax for classification, the raw output for regression)."""
    was_training, device = model.training, model_device(model)
    model.eval()
    preds, labels = [], []
    for batch in make_loader(ds, tokenizer, batch_size=batch_size, shuffle=False, seed=0):
        batch, rows = distributed.shard(batch)  # data parallel: rows r::W, gathered below
        if rows == 0:
            continue
        batch = _to_device(batch, device)
        with autocast(device, precision):
            logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits.float()
        preds.append(logits.squeeze(-1) if task.num_labels == 1 else logits.argmax(-1))
        labels.append(batch["labels"])
    model.train(was_training)
    pairs = distributed.all_gather_objects((torch.cat(preds).cpu().numpy() if preds else None,
                                            torch.cat(labels).cpu().numpy() if labels else None))
    pairs = [p for p in pairs if p[0] is not None]  # metrics do not depend on the order of rows
    return compute_metrics(list(task.metrics), np.concatenate([p[0] for p in pairs]),
                           np.concatenate([p[1] for p in pairs]))


def set_gradient_checkpointing(model: torch.nn.Module, enabled: bool) -> None:
    """Turn the backbone's activation checkpointing on or off (`train.gradient_checkpointing`).

    Non-reentrant (torch.utils.checkpoint with use_reentrant=False): it works with frozen inputs,
    forward hooks and DDP. Each checkpointed layer's forward runs again during backward; the
    statistics collector ignores that recomputation (prunepeft.pruning.collector).
    """
    if enabled == any(getattr(m, "gradient_checkpointing", False) is True for m in model.modules()):
        return
    if not enabled:
        model.gradient_checkpointing_disable()
        return
    if not getattr(model, "supports_gradient_checkpointing", False):
        raise UserError(f"train.gradient_checkpointing=true: {type(model).__name__} does not support it")
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


def _primary(metrics: dict[str, dict[str, float]], task) -> float:
    """The primary metric on the first eval split (NaN, e.g. Pearson of constant output, ranks last)."""
    split = task.eval_splits[0] if task.eval_splits[0] in metrics else next(iter(metrics))
    value = metrics[split][task.primary_metric]
    return -math.inf if value is None or np.isnan(value) else float(value)


def fit(model: torch.nn.Module, param_groups: list[dict], train_ds, eval_sets: dict, tokenizer, *,
        train_cfg, task, epochs: int, seed: int, callbacks: Iterable[Callback] = (), run=None,
        phase: str = "train", evaluate_every_epoch: bool = True) -> FitResult:
    """Train `model` on `train_ds` with AdamW over `param_groups`; evaluate on every eval set.

    Args:
        model: a sequence-classification model computing its own loss from `labels`
            (cross-entropy, or MSE when num_labels == 1).
        param_groups: from `build_param_groups` (each group keeps its own lr).
        train_ds, eval_sets: tokenised datasets; eval_sets maps split name -> dataset ({} = none).
        train_cfg: TrainConfig (batch_size per optimizer step, grad_accum, max_grad_norm (0 = no
            clipping), warmup_ratio, precision, device, log_every, progress, eval_batch_size).
        task: TaskConfig (metrics, primary_metric, eval_splits, num_labels).
        epochs, seed: number of epochs; seed for the RNGs and the loader's shuffling.
        callbacks: `Callback`s, called in order (see callbacks.py for when).
        run: a RunDir; step events every `log_every` steps and one eval event per epoch go to it.
        phase: label of the events (warmup, round3, retrain, train, ...).
        evaluate_every_epoch: False = evaluate after the last epoch only.
    """
    accum = int(train_cfg.grad_accum)
    if accum < 1 or train_cfg.batch_size % accum:
        raise UserError(f"train.batch_size={train_cfg.batch_size} must be a multiple of train.grad_accum={accum}")
    seed_everything(seed)
    device = resolve_device(train_cfg.device)
    model.to(device)
    set_gradient_checkpointing(model, bool(getattr(train_cfg, "gradient_checkpointing", False)))
    net = distributed.wrap(model, device)  # DDP under torchrun (averages gradients), else the model
    cbs = CallbackList(callbacks)
    loader = make_loader(train_ds, tokenizer, batch_size=train_cfg.batch_size // accum, shuffle=True, seed=seed,
                         group_by_length=bool(getattr(train_cfg, "group_by_length", False)))
    steps_per_epoch = math.ceil(len(loader) / accum)
    total_steps = max(1, epochs * steps_per_epoch)
    optimizer = build_optimizer(param_groups)
    scheduler = linear_schedule(optimizer, total_steps, train_cfg.warmup_ratio)
    params = trainable(param_groups)
    history, best, best_epoch, step, seen, evaluated, start = [], {}, 0, 0, 0, 0, time.time()
    allowed, skipped = int(getattr(train_cfg, "max_nonfinite_steps", 0) or 0), 0
    log_loss, log_n, lr = 0.0, 0, optimizer.param_groups[0]["lr"]

    with _progress(train_cfg.progress) as bar:
        task_bar = bar.add_task(phase, total=total_steps, info="")
        for epoch in range(1, epochs + 1):
            model.train()
            epoch_loss, epoch_n = 0.0, 0
            for micro_batches in _chunks(loader, accum):
                n_step = sum(len(b["labels"]) for b in micro_batches)  # rows over all ranks
                finite, step_loss, step_n = True, 0.0, 0
                for i, batch in enumerate(micro_batches):
                    batch, n = distributed.shard(batch)  # this rank's rows r::W (all of them alone)
                    batch = _to_device(batch, device)
                    # An empty share runs row 0 with weight 0 (DDP needs every rank): hidden from the
                    # statistics by an all-zero attention mask.
                    cbs.on_train_batch_start(batch if n else {**batch, "attention_mask": torch.zeros_like(batch["attention_mask"])})
                    with distributed.no_sync(net, skip=i < len(micro_batches) - 1):  # sync at the last
                        with autocast(device, train_cfg.precision):
                            loss = net(**batch).loss.float()
                        # Weight by rows so accumulated grads equal the full batch's mean; DDP then
                        # averages over W ranks, hence the factor W.
                        (loss * (n * distributed.world_size() / n_step)).backward()
                    value = loss.item()
                    finite = finite and math.isfinite(value)
                    if math.isfinite(value) and n:  # a NaN would poison the epoch's mean loss
                        step_loss, step_n = step_loss + value * n, step_n + n
                step += 1
                step_loss, step_n, finite = _step_totals(step_loss, step_n, finite, device)
                epoch_loss, log_loss = epoch_loss + step_loss, log_loss + step_loss
                epoch_n, log_n = epoch_n + step_n, log_n + step_n
                # NaN guard: checked before the callbacks, so no criterion ever sees NaN gradients.
                if not finite:
                    skipped += 1
                    if run is not None:
                        run.event(phase=phase, kind="nonfinite", step=step, epoch=epoch, skipped=skipped)
                    if skipped > allowed:
                        raise _diverged(f"loss {value}", phase, step, epoch, optimizer, train_cfg, allowed)
                    optimizer.zero_grad(set_to_none=True)
                    scheduler.step()
                    continue
                cbs.on_before_optimizer_step(step)  # unclipped grads (Table 1: gradient, taylor)
                grad_norm = torch.nn.utils.clip_grad_norm_(params, train_cfg.max_grad_norm or math.inf)
                lr = optimizer.param_groups[0]["lr"]
                if not _all_finite(bool(torch.isfinite(grad_norm)), device):
                    skipped += 1
                    if skipped > allowed:
                        raise _diverged(f"gradient norm {float(grad_norm)}", phase, step, epoch, optimizer,
                                        train_cfg, allowed)
                    optimizer.zero_grad(set_to_none=True)
                    scheduler.step()
                    continue
                optimizer.step()
                # A finite loss can hide overflowed weights (LayerNorm rescales them): check the update.
                if not _all_finite(_weights_finite(params), device):
                    raise _diverged("non-finite weights after the update", phase, step, epoch, optimizer,
                                    train_cfg, None)
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                seen += n_step
                cbs.on_step_loss(step, step_loss / max(1, step_n), step_n)
                cbs.on_step_end(step, total_steps)
                if run is not None and (step % train_cfg.log_every == 0 or step == total_steps):
                    run.event(phase=phase, kind="step", step=step, epoch=epoch, loss=round(log_loss / max(1, log_n), 6),
                              lr=lr, grad_norm=round(float(grad_norm), 6))
                    log_loss, log_n = 0.0, 0
                bar.update(task_bar, advance=1, info=f"epoch {epoch}/{epochs} loss {value:.4f}")

            metrics: dict[str, dict[str, float]] = {}
            if eval_sets and (evaluate_every_epoch or epoch == epochs):
                metrics = {split: evaluate(model, ds, tokenizer, task, train_cfg.eval_batch_size, train_cfg.precision)
                           for split, ds in eval_sets.items()}
                evaluated += sum(len(ds) for ds in eval_sets.values())
                if not best or _primary(metrics, task) > _primary(best, task):
                    best, best_epoch = metrics, epoch
            train_loss = epoch_loss / max(1, epoch_n)
            history.append({"epoch": epoch, "train_loss": train_loss, "lr": lr, "metrics": metrics})
            if run is not None:
                run.event(phase=phase, kind="eval", step=step, epoch=epoch, train_loss=round(train_loss, 6),
                          metrics=metrics)
            cbs.on_epoch_end(epoch, metrics)

    last = next((h["metrics"] for h in reversed(history) if h["metrics"]), {})
    return FitResult(history=history, last=last, best=best, best_epoch=best_epoch,
                     examples_seen=seen, steps=step, wall_s=round(time.time() - start, 3), eval_examples=evaluated)
