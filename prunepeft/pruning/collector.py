"""Collect every criterion's statistics in ONE training pass (Table 1; docs/method.md#criteria).

A train Callback:
- `on_train_batch_start` keeps the batch's attention mask, so pad tokens do not count.
- The supernet's delta hook (installed only when "activation" is needed) calls
  fn(uid, site, Δ) from every ACTIVE branch; we add Σ|Δ| over non-pad tokens and features and
  the element count per (unit, site). Evaluation forwards (model.eval(), no grad) are skipped.
- `on_before_optimizer_step` (after backward, BEFORE clipping, grads unscaled) adds the
  per-element |g| and |w·g| of each active unit's criterion parameters (Table 1's gradient and
  taylor: a mean over steps of |·|, not |Σ g|).
- The same hook also receives the base output (h for parallel units, the serial unit's input for
  serial ones) for `output_ratio`: ||Δ|| / ||base|| per token (criteria/output_ratio.py).
- `masked_loss` is not a training statistic: `snapshot()` masks each active unit alone on the
  probe it was given (criteria/masked_loss.py) and records the loss rise, once per scoring.
Accumulators stay on the parameters' device (no host sync per step) and move to CPU in
`snapshot()`.

Data parallel (prunepeft.train.distributed): DDP has already averaged the gradients over the
ranks when `on_before_optimizer_step` runs, so |g| and |w·g| are the same on every rank and are
NOT reduced again (a sum would multiply them by W); the step count is each rank's own (the same
on all). Each rank sees only its rows, so the activation sums and element counts are summed over
the ranks (all-reduce SUM) in `snapshot()`, which every rank calls at the same step.

Gradient checkpointing: a checkpointed layer's forward runs again inside backward; that
recomputation is skipped (`_recomputing`), so sums and counts equal those without checkpointing.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Optional

import torch

from prunepeft.pruning.statistics import STAT_KINDS, UnitId, UnitStatistics
from prunepeft.train import distributed
from prunepeft.train.callbacks import Callback


def _flat(params: Iterable[torch.Tensor]) -> torch.Tensor:
    return torch.cat([p.detach().float().reshape(-1) for p in params])


def _recomputing() -> bool:
    """True inside backward: a checkpointed forward being recomputed (its Δ was counted already)."""
    task_id = getattr(torch._C, "_current_graph_task_id", None)  # -1 outside backward
    return task_id is not None and task_id() != -1


def _grad_or_zeros(p: torch.Tensor) -> torch.Tensor:
    # A parameter without a grad this step (an unused branch) contributes |g| = 0.
    if p.grad is None:
        return torch.zeros_like(p, dtype=torch.float32)
    return p.grad.detach().float()


class StatisticsCollector(Callback):
    """Gathers per-unit statistics for the criteria; see the module docstring.

    Args:
        supernet: a Supernet (needs `active_ids()`, `criterion_parameters(uid)`,
            `set_delta_hook(fn)`; `.model` is used to skip evaluation forwards).
        needs: statistics to gather, a subset of {"weights", "grad", "taylor", "activation"}
            (`criteria.needs_of(names)`); weights are always reported.
        probe: the masked_loss criterion's `masked.MaskedProbe` (`masked_loss_probe`); required when
            `needs` has "masked_loss", whose rises `snapshot()` measures on it.
    """

    def __init__(self, supernet: Any, needs: Iterable[str], probe: Any = None) -> None:
        needs = set(needs)
        unknown = needs - STAT_KINDS
        if unknown:
            raise ValueError(f"unknown statistics {sorted(unknown)}; valid: {sorted(STAT_KINDS)}")
        if "masked_loss" in needs and probe is None:
            raise ValueError("the masked_loss statistic needs a probe (pruning.masked_probe.masked_loss_probe)")
        self.supernet = supernet
        self.probe = probe
        self.needs = frozenset(needs | {"weights"})
        self._mask: Optional[torch.Tensor] = None
        self._hooked = bool({"activation", "output_ratio"} & self.needs)
        self.reset()
        if self._hooked:
            supernet.set_delta_hook(self._on_delta)

    def reset(self) -> None:
        """Forget everything accumulated (start of a round or of a warm-up snapshot window)."""
        self._grad: dict[UnitId, torch.Tensor] = {}
        self._taylor: dict[UnitId, torch.Tensor] = {}
        self._steps: dict[UnitId, int] = {}
        self._act_sum: dict[tuple[UnitId, int], torch.Tensor] = {}
        self._act_count: dict[tuple[UnitId, int], torch.Tensor] = {}
        self._ratio: dict[tuple[UnitId, int], list[torch.Tensor]] = {}  # per training forward

    def close(self) -> None:
        """Remove the delta hook (call when the round's training is over)."""
        if self._hooked:
            self.supernet.set_delta_hook(None)
            self._hooked = False
        self._mask = None

    # --- train Callback -------------------------------------------------------------------
    def on_train_batch_start(self, batch: dict[str, Any]) -> None:
        mask = batch.get("attention_mask") if isinstance(batch, dict) else None
        self._mask = mask.detach() if isinstance(mask, torch.Tensor) else None

    @torch.no_grad()
    def on_before_optimizer_step(self, step: int) -> None:
        want_grad, want_taylor = "grad" in self.needs, "taylor" in self.needs
        if not (want_grad or want_taylor):
            return
        for uid in self.supernet.active_ids():
            params = list(self.supernet.criterion_parameters(uid))
            g = torch.cat([_grad_or_zeros(p).reshape(-1) for p in params]).abs()
            if want_grad:
                self._grad[uid] = self._grad[uid] + g if uid in self._grad else g.clone()
            if want_taylor:
                wg = _flat(params).abs() * g  # |w·g| = |w|·|g|, w at this step (before the update)
                self._taylor[uid] = self._taylor[uid] + wg if uid in self._taylor else wg
            self._steps[uid] = self._steps.get(uid, 0) + 1

    # --- activation hook ------------------------------------------------------------------
    def _training_forward(self) -> bool:
        model = getattr(self.supernet, "model", None)
        return torch.is_grad_enabled() and (model is None or bool(getattr(model, "training", True)))

    def _on_delta(self, uid: UnitId, site: int, delta: torch.Tensor, base: Optional[torch.Tensor] = None) -> None:
        # Checked before entering no_grad: evaluation runs under no_grad / model.eval().
        if not self._training_forward() or _recomputing():
            return
        with torch.no_grad():
            if "activation" in self.needs:
                self._add_delta(uid, site, delta.detach().float().abs())
            if "output_ratio" in self.needs and base is not None:
                self._add_ratio(uid, site, delta, base)

    def _add_delta(self, uid: UnitId, site: int, d: torch.Tensor) -> None:
        mask = self._mask
        if mask is not None and d.dim() >= 2 and tuple(mask.shape) == tuple(d.shape[:2]):
            # float64 totals: a round adds up ~1e9 elements, beyond float32's exact integers.
            m = mask.to(device=d.device, dtype=torch.float64)
            feat = d[0, 0].numel()
            total = (d.reshape(*d.shape[:2], -1).sum(-1, dtype=torch.float64) * m).sum()
            count = m.sum() * feat
        else:  # no mask for this shape: every element counts
            total = d.sum(dtype=torch.float64)
            count = torch.tensor(float(d.numel()), device=d.device, dtype=torch.float64)
        key = (uid, int(site))
        if key in self._act_sum:
            self._act_sum[key] += total
            self._act_count[key] += count
        else:
            self._act_sum[key] = total.clone()
            self._act_count[key] = count.clone()

    def activation_totals(self) -> dict[tuple[UnitId, int], tuple[float, float]]:
        """(Σ|Δ|, element count) per (unit, site), summed over the ranks under data parallelism."""
        keys = sorted(self._act_sum)
        if not keys:
            return {}
        device = self._act_sum[keys[0]].device
        totals = torch.stack([torch.stack([self._act_sum[k] for k in keys]),
                              torch.stack([self._act_count[k] for k in keys])]).to(torch.float64)
        if distributed.active():
            # Every rank runs every active branch on every micro-batch, so the keys agree; check it.
            n = torch.tensor([len(keys), -len(keys)], device=device, dtype=torch.float64)
            torch.distributed.all_reduce(n, op=torch.distributed.ReduceOp.MAX)
            if int(n[0]) != -int(n[1]):
                raise RuntimeError("activation statistics differ in their units across ranks")
            distributed.all_reduce_sum(totals)
        totals = totals.cpu()
        return {k: (float(totals[0, i]), float(totals[1, i])) for i, k in enumerate(keys)}

    @staticmethod
    def _activation(uid: UnitId, totals: dict[tuple[UnitId, int], tuple[float, float]]) -> Optional[float]:
        per_site = [s / c for k, (s, c) in sorted(totals.items()) if k[0] == uid and c > 0]
        return sum(per_site) / len(per_site) if per_site else None

    def _add_ratio(self, uid: UnitId, site: int, delta: torch.Tensor, base: torch.Tensor) -> None:
        # Light-PEFT's importance ratio: ||Δ_t|| / ||base_t|| per token, mean over non-pad tokens
        # (NaN/inf -> 0); one value per training forward, kept on the device.
        ratio = delta.float().norm(dim=-1) / base.detach().float().norm(dim=-1)
        ratio = torch.nan_to_num(ratio, nan=0.0, posinf=0.0, neginf=0.0)
        mask = self._mask
        if mask is not None:
            if tuple(mask.shape) != tuple(ratio.shape):  # never average pad tokens in silently
                raise ValueError(f"output_ratio: attention mask of shape {tuple(mask.shape)} for per-token "
                                 f"ratios of shape {tuple(ratio.shape)} at {uid}, site {site}")
            m = mask.to(device=ratio.device, dtype=torch.float32)
            value = (ratio * m).sum() / m.sum().clamp_min(1.0)
        else:  # no attention mask in the batch: every token is a real token
            value = ratio.mean()
        self._ratio.setdefault((uid, int(site)), []).append(value)

    def _output_ratio(self, uid: UnitId) -> Optional[float]:
        # The mean over the second half of the forwards (the ratio is 0 at LoRA's B = 0 init, so
        # the early steps say little), then over the unit's sites. Under data parallelism each
        # rank's per-site value (over its rows) is averaged over the ranks, so every rank scores
        # the same number: the ranks must take the same pruning decision.
        per_site = [torch.stack(v[len(v) // 2:]).mean() for k, v in sorted(self._ratio.items()) if k[0] == uid and v]
        if not per_site:
            return None
        values = torch.stack(per_site).to(torch.float64)
        if distributed.active():
            values = distributed.all_reduce_sum(values) / distributed.world_size()
        return float(values.mean())

    # --- results --------------------------------------------------------------------------
    def snapshot(self) -> dict[UnitId, UnitStatistics]:
        """Statistics of every ACTIVE unit since the last reset (weights = current values)."""
        out: dict[UnitId, UnitStatistics] = {}
        totals = self.activation_totals() if "activation" in self.needs else {}
        for uid in self.supernet.active_ids():
            steps = self._steps.get(uid, 0)
            grad = self._grad.get(uid)
            taylor = self._taylor.get(uid)
            out[uid] = UnitStatistics(
                weights=_flat(self.supernet.criterion_parameters(uid)).cpu(),
                grad_abs=None if grad is None else (grad / steps).cpu(),
                taylor_abs=None if taylor is None else (taylor / steps).cpu(),
                activation=self._activation(uid, totals) if "activation" in self.needs else None,
                steps=steps,
                output_ratio=self._output_ratio(uid) if "output_ratio" in self.needs else None,
            )
        if "masked_loss" in self.needs:  # one masked pass per active unit (the probe times itself)
            for uid, rise in self.probe.importance(self.supernet).items():
                out[uid].masked_loss = float(rise)
        return out
