"""Early pruning of the backbone (issue 14, Deliver 4): masks, L1 penalty, selection, physical removal.

The model-level half: masks on tiny encoders and decoders, the selection rules, the removal and its
parameter count. Runs that prune their backbone (search, baseline, resume, export, load_run) are in
test_backbone_prune_runs.py; the report's refusal to mix backbones in test_backbone_prune_report.py.
"""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from backbone_prune_helpers import batch
from omegaconf import OmegaConf

from prunepeft.errors import UserError
from prunepeft.models import build_tiny, get_family
from prunepeft.arms.backbone_prune import (
    BackboneMasks,
    KeptStructures,
    L1Penalty,
    prune,
    removed_params,
    select,
)
from prunepeft.models.families import base_model_parameter_count

H, HEADS, FF, LAYERS = 32, 4, 64, 3


def tiny(family: str = "bert"):
    cfg = OmegaConf.create({"name": "t", "family": family, "kind": "tiny",
                            "tiny": {"hidden_size": H, "num_hidden_layers": LAYERS, "num_attention_heads": HEADS,
                                     "intermediate_size": FF, "vocab_size": 512}})
    model, tok = build_tiny(cfg, 2, 0)
    return model.eval(), tok, get_family(family)


def logits(model, inputs):
    with torch.no_grad():
        return model(**inputs).logits


@pytest.mark.parametrize("family", ["bert", "roberta"])
def test_masks_at_one_change_nothing(family):
    model, tok, fam = tiny(family)
    inputs = batch(tok)
    before = logits(model, inputs)
    masks = BackboneMasks.install(model, fam)
    assert torch.equal(logits(model, inputs), before)
    assert base_model_parameter_count(model, fam) == base_model_parameter_count(tiny(family)[0], fam)
    masks.remove()
    assert torch.equal(logits(model, inputs), before)


def _zero_one_masks(masks: BackboneMasks) -> None:
    """Exactly 0/1 masks: layer l loses heads l and l - 1 (mod 4); neurons: every third is 0 (22 of
    64 per layer). `ZEROS` are the fractions that cut exactly the zeros (select cuts a fixed count)."""
    with torch.no_grad():
        for layer, m in enumerate(masks.heads):
            m[layer % HEADS] = 0.0
            m[(layer - 1) % HEADS] = 0.0
        for m in masks.neurons:
            m[::3] = 0.0


ZERO_NEURONS = 22 * LAYERS / (FF * LAYERS)  # 66 of 192: numpy's quantile position 65.7 cuts 66


@pytest.mark.parametrize("family", ["bert", "roberta"])
def test_physical_removal_equals_masked_model(family):
    model, tok, fam = tiny(family)
    inputs = batch(tok)
    fresh = copy.deepcopy(model)
    before = base_model_parameter_count(model, fam)
    masks = BackboneMasks.install(model, fam)
    _zero_one_masks(masks)
    masked = logits(model, inputs)
    kept = select(masks, heads=0.5, ffn=ZERO_NEURONS)
    assert kept.heads == [[1, 2], [2, 3], [0, 3]]
    assert all(n == [i for i in range(FF) if i % 3] for n in kept.neurons)
    prune(fresh, fam, kept)
    assert torch.allclose(logits(fresh, inputs), masked, atol=1e-5)
    # the attention modules read the new head count; the closed form matches the parameter count
    attn = fresh.get_submodule(f"{fam.layers_path}.0.attention.self")
    assert attn.num_attention_heads == 2 and attn.all_head_size == 2 * (H // HEADS)
    after = base_model_parameter_count(fresh, fam)
    assert before - after == removed_params(H, H // HEADS, kept, LAYERS)
    with pytest.raises(UserError, match="already pruned"):
        prune(fresh, fam, kept)


def decoder(family: str, kv_heads: int | None = None):
    """A tiny decoder (4 heads of 8, 3 layers); `kv_heads` < 4 gives grouped-query attention."""
    cfg = OmegaConf.create({"name": "t", "family": family, "kind": "tiny",
                            "tiny": {"hidden_size": H, "num_hidden_layers": LAYERS, "num_attention_heads": HEADS,
                                     "intermediate_size": FF, "vocab_size": 512}})
    model, tok = build_tiny(cfg, 2, 0)
    if kv_heads is not None:
        from transformers import AutoModelForSequenceClassification

        model.config.num_key_value_heads = kv_heads
        torch.manual_seed(0)
        model = AutoModelForSequenceClassification.from_config(model.config)
    return model.eval(), tok, get_family(family)


@pytest.mark.parametrize("family, kv_heads", [("llama", None), ("qwen2", None), ("llama", 2)])
def test_decoder_masked_equals_pruned(family, kv_heads):
    """Decoders: masks at 1 change nothing; 0/1 masks == the physically pruned model (logits within 1e-5);
    under grouped-query attention whole key/value groups go; the parameter count matches by hand."""
    model, tok, fam = decoder(family, kv_heads)
    inputs = batch(tok)
    before_logits = logits(model, inputs)
    fresh = copy.deepcopy(model)
    before = base_model_parameter_count(model, fam)
    masks = BackboneMasks.install(model, fam)
    assert torch.equal(logits(model, inputs), before_logits)
    g = HEADS // (kv_heads or HEADS)
    assert masks.group == [g] * LAYERS
    with torch.no_grad():
        for layer, m in enumerate(masks.heads):  # layer l loses key/value group l % (4 / g)
            k = layer % (HEADS // g)
            m[k * g:(k + 1) * g] = 0.0
        for m in masks.neurons:
            m[::3] = 0.0
    masked = logits(model, inputs)
    assert not torch.allclose(masked, before_logits)
    kept = select(masks, heads=0.3, ffn=ZERO_NEURONS)  # 0.3: one group per layer, of 4 or of 2
    k0 = [h for h in range(HEADS) if h // g != 0]
    assert kept.heads[0] == k0 and len(kept.heads[1]) == HEADS - g
    prune(fresh, fam, kept)
    assert torch.allclose(logits(fresh, inputs), masked, atol=1e-5)
    attn = fresh.get_submodule(f"{fam.layers_path}.0.self_attn")
    d = H // HEADS
    assert attn.q_proj.out_features == (HEADS - g) * d and attn.k_proj.out_features == (HEADS // g - 1) * d
    assert attn.num_key_value_groups == g
    # by hand: a cut group = g query rows + 1 key row + 1 value row + g o_proj columns of d each
    # (qwen2: q/k/v biases); a cut neuron = a gate row, an up row and a down column
    qkv_bias = 1 if family == "qwen2" else 0
    per_group = (g + 2) * d * (H + qkv_bias) + g * d * H
    assert before - base_model_parameter_count(fresh, fam) == LAYERS * per_group + LAYERS * (FF // 3 + 1) * 3 * H
    with pytest.raises(UserError, match="already pruned"):
        prune(fresh, fam, kept)
    if g > 1:
        split = KeptStructures([[0, 2, 3]] + kept.heads[1:], kept.neurons, HEADS, FF)
        with pytest.raises(UserError, match="split a group"):
            prune(decoder(family, kv_heads)[0], fam, split)


def test_kept_indices_round_trip_reprune_identically(tmp_path):
    model, tok, fam = tiny()
    masks = BackboneMasks.install(model, fam)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in list(masks.heads) + list(masks.neurons):
            m.copy_(torch.rand(m.shape, generator=g))
    kept = select(masks, heads=1 / 3, ffn=1 / 3)
    kept.save(tmp_path / "backbone_prune.json")
    again = KeptStructures.load(tmp_path / "backbone_prune.json")
    assert again == kept
    a, b = tiny()[0], tiny()[0]
    prune(a, fam, kept)
    prune(b, fam, again)
    inputs = batch(tok)
    assert torch.equal(logits(a, inputs), logits(b, inputs))
    assert {k: v.shape for k, v in a.state_dict().items()} == {k: v.shape for k, v in b.state_dict().items()}


def test_selection_rules():
    model, _, fam = tiny()
    masks = BackboneMasks.install(model, fam)
    with torch.no_grad():
        masks.heads[0].copy_(torch.tensor([0.1, 0.1, 0.1, 0.1]))  # all equal: cuts the quantile's count, lowest index first
        masks.heads[1].copy_(torch.tensor([-0.5, 0.2, 0.9, 0.4]))  # raw values, not |m|
        masks.neurons[0].fill_(0.0)  # the global cut empties layer 0: it keeps one neuron
    kept = select(masks, heads=0.25, ffn=1 / 3)
    assert kept.heads == [[1, 2, 3], [1, 2, 3], [1, 2, 3]]  # layer 2: untouched masks, all at 1
    assert len(kept.neurons[0]) == 1 and kept.counts()[1] == 1 + 2 * FF  # 64 cut = layer 0's neurons
    assert select(masks, heads=0.0, ffn=0.0).counts() == (LAYERS * HEADS, LAYERS * FF)
    with pytest.raises(UserError, match="backbone_prune.heads"):
        select(masks, heads=1.0, ffn=0.0)


def test_masks_that_never_moved_cut_exactly_the_fraction():
    """Tied mask values (e.g. masks that never trained) cut what the quantile rule cuts on distinct
    values, not everything at the quantile: 2 of 4 heads per layer at q = 1/3 (numpy's quantile
    position 1.0), 64 of 192 neurons (position 63.67), the tied neurons spread over the layers."""
    model, _, fam = tiny()
    masks = BackboneMasks.install(model, fam)
    kept = select(masks, heads=1 / 3, ffn=1 / 3)
    assert kept.heads == [[2, 3]] * LAYERS
    assert kept.counts() == (LAYERS * 2, LAYERS * FF - 64) and [len(n) for n in kept.neurons] == [42, 43, 43]
    distinct = BackboneMasks.install(tiny()[0], fam)
    with torch.no_grad():
        for m in [*distinct.heads, *distinct.neurons]:
            m.copy_(torch.randperm(m.numel()).float())
    kept = select(distinct, heads=1 / 3, ffn=1 / 3)  # distinct values: the same counts as "m > quantile"
    assert kept.counts() == (LAYERS * 2, LAYERS * FF - 64)


def test_l1_penalty_gradient_is_coef_times_sign():
    model, tok, fam = tiny()
    masks = BackboneMasks.install(model, fam)
    with torch.no_grad():
        masks.heads[0].copy_(torch.tensor([1.0, -0.5, 0.0, 2.0]))
    model.train()
    out = model(**batch(tok), labels=torch.tensor([0, 1]))
    out.loss.backward()
    task_grads = [m.grad.clone() for m in masks.parameters()]
    L1Penalty(masks, 1e-4).on_before_optimizer_step(1)
    for m, g in zip(masks.parameters(), task_grads):
        assert torch.allclose(m.grad - g, 1e-4 * torch.sign(m.detach()), atol=1e-10, rtol=0)  # float rounding of g + λs
    # the same as differentiating 1e-4 * sum|m| added to the loss
    ref = [torch.autograd.grad(1e-4 * m.abs().sum(), m)[0] for m in masks.parameters()]
    for m, g, r in zip(masks.parameters(), task_grads, ref):
        assert torch.allclose(m.grad - g, r, atol=1e-10, rtol=0)


def test_masks_train_in_fit_and_penalty_shrinks_them():
    from prunepeft.config.schema import TaskConfig, TrainConfig
    from prunepeft.train import build_param_groups, fit
    from datasets import Dataset
    import dataclasses

    model, tok, fam = tiny()
    for p in model.parameters():
        p.requires_grad_(False)
    masks = BackboneMasks.install(model, fam)
    enc = tok(["good day", "not good", "great story", "never right"] * 4, truncation=True, max_length=16)
    ds = Dataset.from_dict({**enc, "labels": [1, 0, 1, 0] * 4})
    tc = dataclasses.replace(TrainConfig(), batch_size=8, grad_accum=1, lr_peft=1e-2, lr_head=1e-2,
                             lr_backbone=0.0, weight_decay=0.0, warmup_ratio=0.0, device="cpu",
                             precision="fp32", progress=False, max_grad_norm=1.0)
    task = TaskConfig(name="toy", hub_config="toy", metrics=["accuracy"], primary_metric="accuracy")
    groups = build_param_groups(peft=list(masks.parameters()), train_cfg=tc)
    l1_before = float(masks.l1().detach())
    # a large coefficient so two steps move every mask down
    fit(model, groups, ds, {}, tok, train_cfg=tc, task=task, epochs=1, seed=0, callbacks=[L1Penalty(masks, 10.0)])
    assert float(masks.l1().detach()) < l1_before
    assert all(np.all(v < 1.0) for v in masks.values()[0])


def test_unsupported_family_and_wrapped_sites_are_refused():
    cfg = OmegaConf.create({"name": "t", "family": "mistral", "kind": "tiny",
                            "tiny": {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
                                     "intermediate_size": 64, "vocab_size": 512}})
    with pytest.raises(UserError, match="not supported"):
        BackboneMasks.install(build_tiny(cfg, 2, 0)[0], get_family("mistral"))
    model, _, fam = tiny()
    layer0 = model.get_submodule(f"{fam.layers_path}.0")
    layer0.attention.self.query = torch.nn.Sequential(layer0.attention.self.query)  # stands in for a PEFT wrapper
    kept = KeptStructures([[0, 1]] + [[0, 1, 2, 3]] * (LAYERS - 1), [list(range(FF))] * LAYERS, HEADS, FF)
    with pytest.raises(UserError, match="before PEFT units"):
        prune(model, fam, kept)


def test_budget_is_a_share_of_the_unpruned_base():
    from prunepeft.peft import Supernet, UnitSizes, count_parameters
    from prunepeft.arms.backbone_stage import BASE_BEFORE
    from prunepeft.pruning.stages import budget_of

    model, _, fam = tiny()
    before = base_model_parameter_count(model, fam)
    kept = KeptStructures([[0, 1]] * LAYERS, [list(range(FF // 2))] * LAYERS, HEADS, FF)
    prune(model, fam, kept)
    setattr(model, BASE_BEFORE, before)
    supernet = Supernet.build(model, fam, ["lora"], UnitSizes(lora_r=4, lora_alpha=8.0, adapter_bottleneck=8), H)
    assert count_parameters(supernet).base < before
    cfg = OmegaConf.create({"budget": {"percent": 1.0, "params": None}})
    strategy = type("S", (), {"prunes": True})()
    from prunepeft.pruning.budget import budget_params
    assert budget_of(supernet, strategy, cfg)[0] == budget_params(1.0, None, before)
