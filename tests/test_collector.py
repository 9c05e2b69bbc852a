"""StatisticsCollector: per-step |g| and |w·g| means, masked |Δ| means, hooks only when needed."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from prunepeft.pruning.collector import StatisticsCollector
from prunepeft.pruning.criteria import HYBRID_CRITERIA, CriterionContext, needs_of
from prunepeft.pruning.scoring import score_snapshot
from prunepeft.train.callbacks import Callback

A, B = (0, "lora"), (1, "adapter")


class FakeSupernet:
    """The slice of the Supernet API the collector uses."""

    def __init__(self) -> None:
        self.model = nn.Module()
        self.model.train()
        self.params = {
            A: [nn.Parameter(torch.tensor([1.0, -2.0])), nn.Parameter(torch.tensor([[0.5]]))],
            B: [nn.Parameter(torch.tensor([3.0]))],
        }
        self.active = [A, B]
        self.hook = None
        self.hook_calls = []

    def active_ids(self):
        return list(self.active)

    def criterion_parameters(self, uid):
        return self.params[uid]

    def set_delta_hook(self, fn):
        self.hook_calls.append(fn)
        self.hook = fn


def set_grads(net, grads):
    for uid, gs in grads.items():
        for p, g in zip(net.params[uid], gs):
            p.grad = torch.tensor(g, dtype=torch.float32).reshape(p.shape)


def test_is_a_train_callback_and_installs_only_needed_hooks():
    net = FakeSupernet()
    col = StatisticsCollector(net, needs_of(["weight", "taylor"]))
    assert isinstance(col, Callback)
    assert net.hook_calls == []  # no activation criterion -> no delta hook
    snap = col.snapshot()
    assert snap[A].activation is None and snap[A].grad_abs is None
    col2 = StatisticsCollector(net, {"activation"})
    assert net.hook is not None
    col2.close()
    assert net.hook is None
    with pytest.raises(ValueError, match="unknown statistics"):
        StatisticsCollector(net, {"hessian"})


def test_grad_and_taylor_are_means_over_steps_of_absolute_values():
    net = FakeSupernet()
    col = StatisticsCollector(net, {"grad", "taylor"})
    set_grads(net, {A: [[1.0, 1.0], [-2.0]], B: [[4.0]]})
    col.on_before_optimizer_step(1)
    with torch.no_grad():  # the optimizer moves the weights between steps
        net.params[A][0].copy_(torch.tensor([2.0, -2.0]))
    set_grads(net, {A: [[-3.0, 1.0], [0.0]], B: [[-2.0]]})
    col.on_before_optimizer_step(2)
    snap = col.snapshot()
    assert snap[A].steps == 2
    # |g| per element: (|1|+|-3|)/2, (1+1)/2, (2+0)/2  -- mean of |g|, not |mean g|
    assert snap[A].grad_abs.tolist() == pytest.approx([2.0, 1.0, 1.0])
    # |w·g| with w at each step: (|1·1| + |2·-3|)/2, (|-2·1| + |-2·1|)/2, (|0.5·-2| + 0)/2
    assert snap[A].taylor_abs.tolist() == pytest.approx([3.5, 2.0, 0.5])
    assert snap[B].grad_abs.tolist() == pytest.approx([3.0])
    assert snap[A].weights.tolist() == pytest.approx([2.0, -2.0, 0.5])  # current values
    col.reset()
    assert col.snapshot()[A].grad_abs is None and col.snapshot()[A].steps == 0


def test_only_active_units_are_accumulated_and_reported():
    net = FakeSupernet()
    col = StatisticsCollector(net, {"grad"})
    net.active = [A]
    set_grads(net, {A: [[1.0, 1.0], [1.0]], B: [[5.0]]})
    col.on_before_optimizer_step(1)
    assert list(col.snapshot()) == [A]


def test_activation_masks_pad_tokens_and_averages_sites():
    net = FakeSupernet()
    col = StatisticsCollector(net, {"activation"})
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    col.on_train_batch_start({"input_ids": torch.zeros(2, 3), "attention_mask": mask})
    delta = torch.full((2, 3, 2), 100.0)  # pad positions are huge: they must not count
    delta[0, 0] = torch.tensor([1.0, -1.0])
    delta[0, 1] = torch.tensor([2.0, 2.0])
    delta[1, 0] = torch.tensor([-3.0, 3.0])
    net.hook(A, 0, delta)  # site 0: mean |Δ| over 3 tokens x 2 features = 12 / 6 = 2
    net.hook(A, 1, torch.ones(2, 3, 2) * torch.tensor([[[1.0]], [[1.0]]]) * 4)  # site 1: 4
    assert col.snapshot()[A].activation == pytest.approx((2.0 + 4.0) / 2)
    # a second batch adds to the sums and counts of site 0
    col.on_train_batch_start({"attention_mask": torch.ones(1, 1, dtype=torch.long)})
    net.hook(A, 0, torch.tensor([[[8.0, 8.0]]]))  # (12 + 16) / (6 + 2) = 3.5
    assert col.snapshot()[A].activation == pytest.approx((3.5 + 4.0) / 2)
    assert col.snapshot()[B].activation is None  # never fired


def test_activation_skips_evaluation_forwards():
    net = FakeSupernet()
    col = StatisticsCollector(net, {"activation"})
    col.on_train_batch_start({"attention_mask": torch.ones(1, 2)})
    net.hook(A, 0, torch.ones(1, 2, 3))
    with torch.no_grad():
        net.hook(A, 0, torch.full((1, 2, 3), 50.0))
    net.model.eval()
    net.hook(A, 0, torch.full((1, 2, 3), 50.0))
    assert col.snapshot()[A].activation == pytest.approx(1.0)


# ------------------------------------------------------------------ the real Supernet on tiny_bert
def _tiny_supernet(compose_config):
    from prunepeft.models.families import get_family
    from prunepeft.models.tiny import build_tiny
    from prunepeft.peft.supernet import Supernet
    from prunepeft.peft.units import UnitSizes

    cfg = compose_config("search", ["model=tiny_bert"])
    model, tokenizer = build_tiny(cfg.model, num_labels=2, seed=0)
    for m in model.modules():  # no dropout: padded and unpadded forwards must agree
        if isinstance(m, nn.Dropout):
            m.p = 0.0
    family = get_family(cfg.model.family)
    net = Supernet.build(
        model, family, ["lora", "adapter"], UnitSizes.from_model(cfg.model), cfg.model.tiny.hidden_size
    )
    torch.manual_seed(0)
    net.reinit(net.unit_ids(), "paper", torch.Generator().manual_seed(0))
    return net, tokenizer


def _train_step(net, col, batch, step):
    net.model.train()
    col.on_train_batch_start(batch)
    out = net.model(**batch)
    out.loss.backward()
    col.on_before_optimizer_step(step)
    grads = {uid: [p.grad.clone() for p in net.criterion_parameters(uid)] for uid in net.active_ids()}
    for p in net.peft_parameters() + net.head_parameters():
        p.grad = None
    return grads


def test_real_supernet_one_pass_all_statistics(compose_cfg):
    net, tok = _tiny_supernet(compose_cfg)
    col = StatisticsCollector(net, needs_of(HYBRID_CRITERIA))
    texts = ["a short one", "a much longer sentence with many more tokens in it"]
    batch = dict(tok(texts, padding=True, return_tensors="pt"))
    batch["labels"] = torch.tensor([0, 1])
    assert (batch["attention_mask"] == 0).any()  # the batch really has pad tokens
    weights_before = {
        uid: torch.cat([p.detach().reshape(-1) for p in net.criterion_parameters(uid)]) for uid in net.active_ids()
    }
    grads = _train_step(net, col, batch, 1)
    snap = col.snapshot()
    assert list(snap) == net.active_ids() and len(snap) == 8
    for uid, s in snap.items():
        g = torch.cat([x.reshape(-1) for x in grads[uid]])
        assert s.weights.shape == s.grad_abs.shape == s.taylor_abs.shape == g.shape
        assert torch.allclose(s.grad_abs, g.abs())
        assert torch.allclose(s.taylor_abs, (weights_before[uid] * g).abs())
        assert s.activation is not None and s.activation > 0 and s.steps == 1

    # pad tokens do not count: the padded batch equals the two sentences run unpadded
    col2 = StatisticsCollector(net, {"activation"})  # replaces the hook
    for i, text in enumerate(texts):
        single = dict(tok([text], return_tensors="pt"))
        single["labels"] = torch.tensor([i])
        _train_step(net, col2, single, 1)
    alone = col2.snapshot()
    for uid in snap:
        assert alone[uid].activation == pytest.approx(snap[uid].activation, rel=1e-4)

    # evaluation forwards are skipped; deactivated units vanish from the snapshot
    net.model.eval()
    with torch.no_grad():
        net.model(**{k: v for k, v in batch.items() if k != "labels"})
    assert col2.snapshot()[(0, "lora")].activation == alone[(0, "lora")].activation
    net.deactivate((2, "adapter"))
    assert (2, "adapter") not in col2.snapshot()
    col2.close()

    scores = score_snapshot(col.snapshot(), list(HYBRID_CRITERIA), CriterionContext(seed=0))
    for name in HYBRID_CRITERIA:
        assert len(scores[name].rank) == 7
