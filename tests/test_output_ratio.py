"""`output_ratio` (Light-PEFT's module score): known answers, second half of the forwards, degenerate at init."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from prunepeft.pruning.collector import StatisticsCollector
from prunepeft.pruning.criteria import CriterionContext
from prunepeft.pruning.scoring import score_snapshot
from test_diagnostics import collect, supernet


class _Stub:
    """The least a StatisticsCollector needs: one active unit, a model in train mode."""

    def __init__(self):
        self.model = nn.Linear(1, 1).train()
        self.w = torch.ones(2, 2)

    def active_ids(self):
        return [(0, "lora")]

    def criterion_parameters(self, uid):
        return [self.w]

    def set_delta_hook(self, fn):
        pass


def test_output_ratio_known_answer_non_pad_tokens_second_half_and_sites():
    col = StatisticsCollector(_Stub(), {"output_ratio"})
    col.on_train_batch_start({"attention_mask": torch.tensor([[1, 1, 0]])})
    base = torch.tensor([[[3.0, 4.0], [0.0, 2.0], [1.0, 0.0]]])  # norms 5, 2, 1
    delta = torch.tensor([[[0.0, 1.0], [1.0, 0.0], [9.0, 9.0]]])  # norms 1, 1, (pad)
    col._on_delta((0, "lora"), 0, 100 * delta, base)  # first half of the forwards: not counted
    col._on_delta((0, "lora"), 0, delta, base)  # (1/5 + 1/2) / 2 = 0.35
    col._on_delta((0, "lora"), 1, delta, 2 * base)  # other site: 0.175
    assert col.snapshot()[(0, "lora")].output_ratio == pytest.approx((0.35 + 0.175) / 2)


def test_output_ratio_is_degenerate_at_the_standard_init_and_not_after():
    net = supernet(0, scheme="standard")
    snap = score_snapshot(collect(net, ("output_ratio",)), ("output_ratio",), CriterionContext())
    assert set(snap["output_ratio"].raw.values()) == {0.0} and snap["output_ratio"].degenerate
    snap = score_snapshot(collect(supernet(0), ("output_ratio",)), ("output_ratio",), CriterionContext())
    assert not snap["output_ratio"].degenerate and min(snap["output_ratio"].raw.values()) > 0
