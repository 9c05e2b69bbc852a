"""The training loop: learning, determinism, per-group lrs, grad accumulation, callback order, events."""
from __future__ import annotations

import contextlib
import dataclasses

import pytest
import torch
from datasets import Dataset

from prunepeft.config.schema import ModelConfig, TaskConfig, TinyModelConfig, TrainConfig
from prunepeft.errors import UserError
from prunepeft.run.io import read_jsonl
from prunepeft.models.tiny import build_tiny
from prunepeft.run.record import RunDir
from prunepeft.train import Callback, build_optimizer, build_param_groups, fit, linear_schedule
from prunepeft.train.device import autocast, resolve_device, resolve_precision
from prunepeft.train.loop import _progress

TASK = TaskConfig(name="toy", hub_config="toy", metrics=["accuracy"], primary_metric="accuracy")
# Whole words of the tiny tokenizer's vocabulary (one token each).
POS = ["good", "great", "best", "true", "right", "well", "help", "better"]
NEG = ["not", "no", "low", "problem", "hard", "stop", "never", "off"]
FILL = ["the", "was", "story", "and", "it", "very", "a", "this", "day", "man"]


def toy_dataset(tokenizer, n: int, seed: int, regression: bool = False) -> Dataset:
    """A learnable sentiment toy: the label is whether the one sentiment word is positive."""
    g = torch.Generator().manual_seed(seed)
    texts, labels = [], []
    for i in range(n):
        words = [FILL[int(j)] for j in torch.randint(len(FILL), (int(torch.randint(2, 8, (1,), generator=g)),), generator=g)]
        pos = i % 2 == 0
        pool = POS if pos else NEG
        words.insert(int(torch.randint(len(words) + 1, (1,), generator=g)), pool[int(torch.randint(len(pool), (1,), generator=g))])
        texts.append(" ".join(words))
        labels.append(float(pos) if regression else int(pos))
    enc = tokenizer(texts, truncation=True, max_length=32)
    return Dataset.from_dict({**enc, "labels": labels})


def tiny_model(num_labels: int = 2, seed: int = 0, dropout: bool = True):
    cfg = ModelConfig(name="t", kind="tiny", family="bert", tiny=TinyModelConfig(num_hidden_layers=2))
    model, tok = build_tiny(cfg, num_labels, seed)
    if not dropout:
        for m in model.modules():
            if isinstance(m, torch.nn.Dropout):
                m.p = 0.0
    return model, tok


def train_cfg(**kw) -> TrainConfig:
    base = dict(epochs=1, batch_size=16, eval_batch_size=64, lr_head=3e-3, lr_backbone=3e-3, lr_peft=3e-3,
                warmup_ratio=0.0, progress=False, log_every=1, device="cpu", precision="auto")
    return dataclasses.replace(TrainConfig(), **{**base, **kw})


def all_groups(model, tc):
    head = list(model.classifier.parameters())
    head_ids = {id(p) for p in head}
    return build_param_groups(head=head, backbone=[p for p in model.parameters() if id(p) not in head_ids], train_cfg=tc)


class Recorder(Callback):
    """Records the call order and the (unclipped) grad norm seen before each optimizer step."""

    def __init__(self, model):
        self.model, self.calls, self.norms, self.grads_at_end = model, [], [], []

    def on_train_batch_start(self, batch):
        assert batch["input_ids"].device.type == "cpu" and "labels" in batch
        self.calls.append("batch")

    def on_before_optimizer_step(self, step):
        self.calls.append(f"before{step}")
        grads = [p.grad for p in self.model.parameters() if p.grad is not None]
        self.norms.append(float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))))

    def on_step_end(self, step, total_steps):
        self.calls.append(f"end{step}/{total_steps}")
        self.grads_at_end.append(sum(p.grad is not None for p in self.model.parameters()))

    def on_epoch_end(self, epoch, metrics):
        self.calls.append(f"epoch{epoch}:{sorted(metrics)}")


def test_fit_learns_toy_task_and_writes_events(tmp_path):
    model, tok = tiny_model()
    train, dev = toy_dataset(tok, 128, seed=0), toy_dataset(tok, 64, seed=1)
    tc = train_cfg(epochs=8, log_every=2, lr_head=1e-2, lr_backbone=1e-2)
    run = RunDir(tmp_path)
    res = fit(model, all_groups(model, tc), train, {"validation": dev}, tok, train_cfg=tc, task=TASK,
              epochs=8, seed=0, run=run, phase="unit")
    losses = [h["train_loss"] for h in res.history]
    assert losses[-1] < 0.3 * losses[0], losses
    assert res.last["validation"]["accuracy"] >= 0.9
    assert res.last == res.history[-1]["metrics"]
    best_acc = max(h["metrics"]["validation"]["accuracy"] for h in res.history)
    assert res.best["validation"]["accuracy"] == best_acc
    assert res.history[res.best_epoch - 1]["metrics"] == res.best
    assert res.steps == 8 * 8 and res.examples_seen == 8 * 128
    events = read_jsonl(tmp_path / "events.jsonl")
    steps = [e for e in events if e["kind"] == "step"]
    evals = [e for e in events if e["kind"] == "eval"]
    assert [e["step"] for e in steps] == list(range(2, 65, 2))
    assert all(e["phase"] == "unit" and e["loss"] > 0 for e in steps)
    lrs = [e["lr"] for e in steps]  # no warm-up: linear decay from 1e-2 (the step's lr is logged)
    assert lrs[0] == pytest.approx(1e-2 * 63 / 64) and all(a > b for a, b in zip(lrs, lrs[1:]))
    assert [e["epoch"] for e in evals] == list(range(1, 9))
    assert evals[-1]["metrics"] == res.last


def test_same_seed_gives_identical_history_and_other_seed_differs(tmp_path):
    def once(seed, sub):
        model, tok = tiny_model(seed=0)
        tc = train_cfg(epochs=2)
        res = fit(model, all_groups(model, tc), toy_dataset(tok, 48, 0), {"validation": toy_dataset(tok, 32, 1)},
                  tok, train_cfg=tc, task=TASK, epochs=2, seed=seed, run=RunDir(tmp_path / sub))
        return res.history, [e["loss"] for e in read_jsonl(tmp_path / sub / "events.jsonl") if e["kind"] == "step"]

    a, b, c = once(7, "a"), once(7, "b"), once(8, "c")
    assert a == b
    assert a[1] != c[1]


def test_param_groups_get_their_own_lrs_and_schedule():
    model, _ = tiny_model()
    tc = train_cfg(lr_peft=1e-2, lr_head=1e-3, lr_backbone=1e-5, weight_decay=0.01)
    head = list(model.classifier.parameters())
    peft = [torch.nn.Parameter(torch.zeros(3))]
    frozen = torch.nn.Parameter(torch.zeros(2), requires_grad=False)
    groups = build_param_groups(peft=peft, head=head + peft, backbone=[frozen, *model.bert.parameters()], train_cfg=tc)
    assert [(g["name"], g["lr"], g["weight_decay"]) for g in groups] == [
        ("peft", 1e-2, 0.01), ("head", 1e-3, 0.01), ("backbone", 1e-5, 0.01)]
    assert len(groups[1]["params"]) == len(head)  # the duplicate stayed in its first group
    assert all(p is not frozen for g in groups for p in g["params"])
    opt = build_optimizer(groups)
    sched = linear_schedule(opt, total_steps=10, warmup_ratio=0.2)  # 2 warm-up steps
    lrs = []
    for _ in range(10):
        lrs.append([g["lr"] for g in opt.param_groups])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx([1e-2 / 3, 1e-3 / 3, 1e-5 / 3])
    assert lrs[2] == pytest.approx([1e-2, 1e-3, 1e-5])  # peak after warm-up
    assert lrs[9] == pytest.approx([1e-2 / 8, 1e-3 / 8, 1e-5 / 8])  # linear decay: 1 of 8 decay steps left
    assert all(a[1] >= b[1] for a, b in zip(lrs[2:], lrs[3:]))
    with pytest.raises(ValueError):
        build_optimizer([])


def test_zero_backbone_lr_leaves_backbone_unchanged_in_fit():
    model, tok = tiny_model()
    tc = train_cfg(lr_backbone=0.0)
    before_bb = {n: p.detach().clone() for n, p in model.bert.named_parameters()}
    before_head = model.classifier.weight.detach().clone()
    fit(model, all_groups(model, tc), toy_dataset(tok, 32, 0), {}, tok, train_cfg=tc, task=TASK, epochs=1, seed=0)
    assert all(torch.equal(before_bb[n], p) for n, p in model.bert.named_parameters())
    assert not torch.equal(before_head, model.classifier.weight)


def _first_step_grads(batch_size, accum):
    model, tok = tiny_model(dropout=False)
    tc = train_cfg(batch_size=batch_size, grad_accum=accum)
    grads = {}

    class Grab(Callback):
        def on_before_optimizer_step(self, step):
            if step == 1:
                grads.update({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})

    fit(model, all_groups(model, tc), toy_dataset(tok, 40, 0), {}, tok, train_cfg=tc, task=TASK, epochs=1,
        seed=3, callbacks=[Grab()])
    return grads


def test_grad_accumulation_2x8_equals_1x16():
    one, two = _first_step_grads(16, 1), _first_step_grads(16, 2)
    assert one.keys() == two.keys() and len(one) > 10
    for name in one:
        torch.testing.assert_close(two[name], one[name], rtol=1e-4, atol=1e-6, msg=name)
    with pytest.raises(UserError, match="multiple of train.grad_accum"):
        _first_step_grads(16, 3)


def test_callbacks_see_unclipped_grads_in_order(tmp_path):
    model, tok = tiny_model()
    tc = train_cfg(batch_size=16, grad_accum=2, max_grad_norm=1e-6)
    rec = Recorder(model)
    fit(model, all_groups(model, tc), toy_dataset(tok, 40, 0), {"validation": toy_dataset(tok, 16, 1)}, tok,
        train_cfg=tc, task=TASK, epochs=1, seed=0, callbacks=[rec], run=RunDir(tmp_path))
    # 40 examples, micro-batches of 8 -> 5 micro-batches -> steps of 2, 2, 1.
    assert rec.calls == ["batch", "batch", "before1", "end1/3", "batch", "batch", "before2", "end2/3",
                         "batch", "before3", "end3/3", "epoch1:['validation']"]
    logged = [e["grad_norm"] for e in read_jsonl(tmp_path / "events.jsonl") if e["kind"] == "step"]
    assert rec.norms == pytest.approx(logged, rel=1e-4)  # the pre-clipping total norm
    assert min(rec.norms) > 1e-3  # far above max_grad_norm: the callback ran before clipping
    assert rec.grads_at_end == [0, 0, 0]  # zeroed after each step


def test_regression_uses_mse_and_pearson():
    model, tok = tiny_model(num_labels=1)
    task = TaskConfig(name="toyreg", hub_config="t", num_labels=1, metrics=["pearson", "spearman"],
                      primary_metric="pearson")
    tc = train_cfg(epochs=3, lr_head=1e-2, lr_backbone=1e-2)
    res = fit(model, all_groups(model, tc), toy_dataset(tok, 96, 0, regression=True),
              {"validation": toy_dataset(tok, 32, 1, regression=True)}, tok, train_cfg=tc, task=task,
              epochs=3, seed=0, evaluate_every_epoch=False)
    assert set(res.last["validation"]) == {"pearson", "spearman"}
    assert res.last["validation"]["pearson"] > 0.5
    assert [bool(h["metrics"]) for h in res.history] == [False, False, True]
    assert res.best_epoch == 3
    assert res.history[-1]["train_loss"] < res.history[0]["train_loss"]


def test_device_and_precision_choices(monkeypatch):
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu").type == "cpu"
    with pytest.raises(UserError, match="valid choices"):
        resolve_device("tpu9")
    cpu = torch.device("cpu")
    assert resolve_precision("auto", cpu) == "fp32" and resolve_precision("bf16", cpu) == "fp32"
    assert isinstance(autocast(cpu, "auto"), contextlib.nullcontext)
    with pytest.raises(UserError, match="fp16.*valid choices: auto, bf16, fp32"):
        resolve_precision("fp16", cpu)
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="CUDA is not available"):
            resolve_device("cuda")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert resolve_precision("auto", torch.device("cuda")) == "bf16"
    assert resolve_precision("fp32", torch.device("cuda")) == "fp32"


def test_progress_bar_off_without_tty_or_when_disabled(monkeypatch):
    monkeypatch.setattr("sys.stdout.isatty", lambda: False)
    assert _progress(True).disable
    monkeypatch.setattr("sys.stdout.isatty", lambda: True)
    assert not _progress(True).disable
    assert _progress(False).disable
