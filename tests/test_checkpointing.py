"""`train.gradient_checkpointing=true` on a decoder supernet (tiny_llama): same training, same statistics.

Non-reentrant checkpointing recomputes each layer's forward inside backward, so the supernet's delta
hook fires twice per layer and step; the collector must skip the recomputation. Activation SUMS and
element COUNTS are compared (a doubled sum over a doubled count would hide it in the mean).
"""
from __future__ import annotations

import math

import torch

from prunepeft.data import build_task_data

from prunepeft.config.typed import DataSettings
from prunepeft.pruning.collector import StatisticsCollector
from prunepeft.pruning.phases import train_supernet
from prunepeft.pruning.search import build_supernet, validate


def _train(cfg, checkpointing: bool):
    cfg.train.gradient_checkpointing = checkpointing
    setup = validate(cfg)
    supernet, tokenizer, _ = build_supernet(setup)
    data = build_task_data(DataSettings.from_config(cfg), tokenizer)
    collector = StatisticsCollector(supernet, {"grad", "taylor", "activation"})
    grads = {}

    class KeepGrads:  # the first step's gradients of every trained tensor, before the update
        def on_train_batch_start(self, batch): ...
        def on_before_optimizer_step(self, step):
            if step == 1:
                grads.update({n: p.grad.detach().clone() for n, p in supernet.model.named_parameters()
                              if p.grad is not None})
        def on_step_end(self, step, total): ...
        def on_epoch_end(self, epoch, metrics): ...

    result = train_supernet(supernet, tokenizer, data.train, {}, setup.run.train, epochs=1, seed=int(cfg.seed),
                            phase="train", callbacks=[collector, KeepGrads()])
    checkpointed = any(getattr(m, "gradient_checkpointing", False) is True for m in supernet.model.modules())
    totals, stats = collector.activation_totals(), collector.snapshot()
    collector.close()
    return result, grads, totals, stats, checkpointed


def test_checkpointing_tiny_llama_same_grads_and_statistics(compose_cfg, tiny_overrides):
    cfg = compose_cfg("search", [*tiny_overrides, "model=tiny_llama", "data.train_subset=32"])
    plain, g0, t0, s0, c0 = _train(cfg, False)
    ckpt, g1, t1, s1, c1 = _train(cfg, True)
    assert not c0 and c1  # checkpointing really was on, and only in the second run

    assert g0 and g0.keys() == g1.keys()  # the units (and the head) get gradients
    assert any("lora" in n for n in g1) and all(torch.isfinite(g).all() for g in g1.values())
    for name in g0:
        torch.testing.assert_close(g1[name], g0[name], rtol=1e-4, atol=1e-7)
    assert math.isclose(ckpt.history[-1]["train_loss"], plain.history[-1]["train_loss"], rel_tol=1e-6)

    assert t0 and t0.keys() == t1.keys()
    for key, (total, count) in t0.items():
        assert t1[key][1] == count, key  # not doubled by the recomputed forward
        assert math.isclose(t1[key][0], total, rel_tol=1e-5), key
    for uid, stats in s0.items():
        assert s1[uid].steps == stats.steps
        torch.testing.assert_close(s1[uid].grad_abs, stats.grad_abs, rtol=1e-4, atol=1e-9)
        torch.testing.assert_close(s1[uid].taylor_abs, stats.taylor_abs, rtol=1e-4, atol=1e-10)
