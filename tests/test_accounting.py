"""Parameter accounting against closed forms, and the uniform sizing helper."""
from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf
from transformers import BertConfig, BertForSequenceClassification, LlamaConfig, LlamaForSequenceClassification

from prunepeft.errors import UserError
from prunepeft.models import build_tiny, get_family
from prunepeft.peft.accounting import count_parameters, percent_of, unit_param_count
from prunepeft.peft.sizing import uniform_size_for_budget, uniform_total
from prunepeft.peft.supernet import Supernet
from prunepeft.peft.units import UnitSizes

SIZES = UnitSizes(lora_r=4, lora_alpha=8.0, adapter_bottleneck=8)
H = 32  # tiny hidden size


def tiny(family: str):
    cfg = OmegaConf.create({"name": "t", "family": family, "kind": "tiny",
                            "tiny": {"hidden_size": H, "num_hidden_layers": 4, "num_attention_heads": 2,
                                     "intermediate_size": 64, "vocab_size": 512}})
    return build_tiny(cfg, 2, 0)[0], get_family(family)


def minilm_meta():
    """all-MiniLM-L6-v2's architecture on the meta device: shapes only, no weights, no download."""
    cfg = BertConfig(vocab_size=30522, hidden_size=384, num_hidden_layers=6, num_attention_heads=12,
                     intermediate_size=1536, max_position_embeddings=512, type_vocab_size=2, num_labels=2)
    with torch.device("meta"):
        return BertForSequenceClassification(cfg), get_family("bert")


def test_closed_forms():
    s = UnitSizes(lora_r=16, adapter_bottleneck=64)
    assert unit_param_count("lora", 384, s) == 2 * 16 * (384 + 384) == 24_576
    assert unit_param_count("dora", 384, s) == 24_576 + 2 * 384
    assert unit_param_count("adapter", 384, s) == 2 * 384 * 64 + 64 + 384 == 49_600
    assert unit_param_count("houlsby", 384, s) == 2 * 49_600
    # grouped-query value projection: out = kv heads x head dim
    gqa = {"query": (384, 384), "value": (384, 128)}
    assert unit_param_count("lora", 384, s, gqa) == 16 * (768 + 512)
    assert unit_param_count("dora", 384, s, gqa) == 16 * (768 + 512) + 384 + 128


def test_minilm_supernet_is_1_96_percent():
    """docs/method.md#sizes: [lora, adapter] on MiniLM-L6, r=16 and b=64."""
    s = UnitSizes(lora_r=16, lora_alpha=32, adapter_bottleneck=64)
    supernet_params = 6 * (unit_param_count("lora", 384, s) + unit_param_count("adapter", 384, s))
    assert supernet_params == 445_056
    # Base model, closed form: embeddings (word, position, type, LayerNorm) + 6 layers + pooler.
    h, i, v = 384, 1536, 30522
    embeddings = v * h + 512 * h + 2 * h + 2 * h
    layer = 4 * (h * h + h) + (h * i + i) + (i * h + h) + 2 * 2 * h
    base = embeddings + 6 * layer + (h * h + h)
    # 22,713,216 parameters; the checkpoint file holds 22,713,728 tensor elements because it also
    # stores BERT's `position_ids` buffer (512), which is not a parameter.
    assert base == 22_713_216 == 22_713_728 - 512
    assert round(percent_of(supernet_params, base), 2) == 1.96
    model, fam = minilm_meta()
    net = Supernet.build(model, fam, ["lora", "adapter"], s, 384)
    report = count_parameters(net)
    assert (report.peft, report.base, report.head) == (445_056, base, 384 * 2 + 2)
    assert report.per_unit[(3, "lora")] == 24_576 and report.per_unit[(5, "adapter")] == 49_600
    assert report.percent == pytest.approx(100 * 445_056 / base)


@pytest.mark.parametrize("family", ["bert", "roberta", "llama"])
@pytest.mark.parametrize("kind", ["lora", "dora", "adapter", "houlsby"])
def test_counts_match_closed_forms_for_every_type_and_family(family, kind):
    model, fam = tiny(family)
    base_before = sum(p.numel() for n, p in model.named_parameters() if not n.startswith(fam.head_prefixes))
    head = sum(p.numel() for n, p in model.named_parameters() if n.startswith(fam.head_prefixes))
    net = Supernet.build(model, fam, [kind], SIZES, H)
    report = count_parameters(net)
    per_unit = unit_param_count(kind, H, SIZES)
    assert report.per_unit == {(layer, kind): per_unit for layer in range(4)}
    assert report.peft == 4 * per_unit
    assert all(sum(p.numel() for p in net.unit_parameters(u).values()) == per_unit for u in net.unit_ids())
    assert (report.base, report.head) == (base_before, head)
    assert report.percent == pytest.approx(100 * report.peft / base_before)


def test_gqa_llama_counts_use_real_site_shapes():
    cfg = LlamaConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=1,
                      intermediate_size=64, vocab_size=128, num_labels=2, pad_token_id=0)
    model = LlamaForSequenceClassification(cfg)
    fam = get_family("llama")
    net = Supernet.build(model, fam, ["lora", "dora"], SIZES, 32)
    dims = {"query": (32, 32), "value": (32, 8)}
    report = count_parameters(net)
    assert report.per_unit[(0, "lora")] == unit_param_count("lora", 32, SIZES, dims) == 4 * (64 + 40)
    assert report.per_unit[(1, "dora")] == unit_param_count("dora", 32, SIZES, dims)
    assert uniform_total(model, fam, "lora", 4, 32) == 2 * 4 * (64 + 40)


def test_mixed_supernet_totals_and_head_separate():
    model, fam = tiny("bert")
    net = Supernet.build(model, fam, ["lora", "adapter", "houlsby"], SIZES, H)
    report = count_parameters(net)
    want = 4 * sum(unit_param_count(k, H, SIZES) for k in ("lora", "adapter", "houlsby"))
    assert report.peft == want == sum(p.numel() for p in net.peft_parameters())
    assert report.head == H * 2 + 2
    assert report.base == net.base_params


def test_uniform_sizes_for_minilm_budget():
    """docs/method.md#sizes: at budget.percent=0.75 the fair uniform baselines are LoRA r=18, adapter b=36."""
    model, fam = minilm_meta()
    budget = int(0.75 / 100 * 22_713_216)
    assert uniform_size_for_budget(model, fam, "lora", budget, 384) == 18
    assert uniform_size_for_budget(model, fam, "adapter", budget, 384) == 36
    for kind in ("lora", "dora", "adapter", "houlsby"):
        size = uniform_size_for_budget(model, fam, kind, budget, 384)
        assert uniform_total(model, fam, kind, size, 384) <= budget < uniform_total(model, fam, kind, size + 1, 384)


def test_sizing_exact_boundary_and_too_small_budget():
    model, fam = tiny("bert")
    exact = 4 * unit_param_count("adapter", H, UnitSizes(adapter_bottleneck=5))
    assert uniform_size_for_budget(model, fam, "adapter", exact, H) == 5
    assert uniform_size_for_budget(model, fam, "adapter", exact - 1, H) == 4
    with pytest.raises(UserError, match="too small.*'lora'"):
        uniform_size_for_budget(model, fam, "lora", 100, H)
