"""The training-memory estimate (prunepeft.commands.memory) printed in the start banner."""
from __future__ import annotations

import logging

import torch
from transformers import AutoModelForSequenceClassification, BertConfig, LlamaConfig

from prunepeft.models import get_family
from prunepeft.models.tiny import build_tiny
from prunepeft.peft import UNIT_TYPES, Supernet, UnitSizes
from prunepeft.commands.common import log_memory_estimate
from prunepeft.commands.memory import CPU_ALLOCATOR_SLACK, GIB, estimate, estimate_for_run, peft_activation_bytes

# Meta-Llama-3-8B's config.json, typed in (no download).
LLAMA3_8B = dict(vocab_size=128256, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                 num_attention_heads=32, num_key_value_heads=8, max_position_embeddings=8192,
                 rope_theta=500000.0, rms_norm_eps=1e-5, bos_token_id=128000, eos_token_id=128001,
                 tie_word_embeddings=False)


def test_memory_estimate_llama3_8b_meta(compose_cfg):
    """Table 3 at scale=paper (what its sweep picks: model=llama3_8b, train=default) fits 70 GiB on a GPU."""
    cfg = compose_cfg("search", ["experiment=table3", "scale=paper", "model=llama3_8b", "train=default",
                                 "task=rte"])
    assert cfg.model.dtype == "bfloat16"
    config = LlamaConfig(**LLAMA3_8B, num_labels=2, pad_token_id=128001)
    with torch.device("meta"):
        model = AutoModelForSequenceClassification.from_config(config, dtype=torch.bfloat16)
    est = estimate_for_run(cfg, "search", model, device="cuda")
    assert est.batch_size == cfg.train.batch_size == 32 and est.max_length == cfg.train.max_length == 256
    assert est.gradient_checkpointing == bool(cfg.train.gradient_checkpointing)
    assert 13.5 * GIB < est.weights < 15 * GIB  # ~7.5 B backbone params + the supernet, bf16
    assert est.trainable_params > 0 and est.activations > 0
    assert est.allocator_slack == 0 and est.total == est.allocated  # no CPU slack on a GPU
    # Per token and layer, bf16, SDPA (fused on CUDA, no dropout in Llama): RMSNorm 8h + 2·(3h + 3i)
    # + output 2h + lse 4a, + LoRA (site input h, 2 sites × r) and adapter (h + b): a lower bound.
    h, i, a, n, tokens = 4096, 14336, 32, 32, 32 * 256
    backbone_only = n * (8 * h + 2 * (3 * h + 3 * i) + 2 * h + 4 * a) * tokens
    assert est.activations > backbone_only
    assert est.total <= 70 * GIB, est.describe()
    # Gradient checkpointing keeps one hidden state per layer instead of every layer's share.
    cfg.train.gradient_checkpointing = not cfg.train.gradient_checkpointing
    with torch.device("meta"):
        model = AutoModelForSequenceClassification.from_config(config, dtype=torch.bfloat16)
    other = estimate_for_run(cfg, "search", model, device="cuda")
    lo, hi = sorted([est, other], key=lambda e: e.gradient_checkpointing, reverse=True)
    assert lo.activations < hi.activations / 5


def _tiny_llama() -> torch.nn.Module:
    config = LlamaConfig(vocab_size=10, hidden_size=8, intermediate_size=16, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, num_labels=2, pad_token_id=0,
                         tie_word_embeddings=False)
    return AutoModelForSequenceClassification.from_config(config, attn_implementation="sdpa")


def test_memory_estimate_matches_hand_computation(monkeypatch):
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    model = _tiny_llama()
    for name, p in model.named_parameters():
        p.requires_grad_(name.startswith("score"))
    # Params: embed 10·8 = 80; per layer q 64 + k 32 + v 32 + o 64 + gate/up/down 3·128 + 2 norms 16
    # = 592, two layers 1184; final norm 8; score 8·2 = 16 -> 1288 fp32 = 5152 bytes.
    est = estimate(model, batch_size=3, max_length=5, gradient_checkpointing=False, decoder=True)
    assert est.weights == 1288 * 4
    assert est.trainable_params == 16 and est.trainable_states == 16 * (4 + 8)
    # Per token and layer (s = 4, CUDA, fused SDPA): 2·4h + 4·(3h + 3i) + output 4h + lse 4·a
    # = 64 + 4·72 + 32 + 8 = 392; 15 tokens -> 5880 per layer. Working set 4·(i + 2h) = 128 per token.
    per_layer, working = 392 * 15, 128 * 15
    assert est.activations == 2 * per_layer + working
    ckpt = estimate(model, batch_size=3, max_length=5, gradient_checkpointing=True, decoder=True)
    assert ckpt.activations == 2 * 8 * 4 * 15 + per_layer + working  # layer inputs + 1 recomputed + working
    half = estimate(model, batch_size=3, max_length=5, gradient_checkpointing=False, decoder=True,
                    autocast_bytes=2)
    assert half.activations == 2 * (64 + 2 * 72 + 16 + 8) * 15 + 64 * 15
    assert half.total == half.weights + half.trainable_states + half.activations

    # Encoder, eager attention, dropout 0.1, CUDA (bool masks): 4·(2h + 3h + i) + 2h·1 = 4·56 + 16 = 240,
    # + probabilities a·T·(s + s + 1) = 2·5·9 = 90 -> 330 per token and layer; working 4·(i + 2h + a·T) = 168.
    bert = AutoModelForSequenceClassification.from_config(
        BertConfig(vocab_size=10, hidden_size=8, num_hidden_layers=2, num_attention_heads=2,
                   intermediate_size=16, max_position_embeddings=8), attn_implementation="eager")
    enc = estimate(bert, batch_size=3, max_length=5, gradient_checkpointing=True, decoder=False,
                   backbone_trainable=False)
    assert enc.activations == 2 * 8 * 4 * 15 + 330 * 15 + 168 * 15
    assert enc.trainable_params == sum(p.numel() for p in bert.parameters())
    # Every weight trains (embeddings included): the backbone's Linear inputs 4·(3h + i) = 160 more.
    fft = estimate(bert, batch_size=3, max_length=5, gradient_checkpointing=True, decoder=False)
    assert fft.activations == enc.activations + 160 * 15
    # On CPU a dropout mask is a float tensor (s bytes), and glibc's slack comes on top.
    cpu = estimate(bert, batch_size=3, max_length=5, gradient_checkpointing=True, decoder=False,
                   backbone_trainable=False, device_type="cpu")
    assert cpu.activations == enc.activations + (2 * 8 * 3 + 2 * 5 * 3) * 15
    assert cpu.allocator_slack == int(CPU_ALLOCATOR_SLACK * cpu.activations) and cpu.total > cpu.allocated
    # glibc told to mmap every large block gives the freed activations back: no slack.
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "131072")
    assert estimate(bert, batch_size=3, max_length=5, gradient_checkpointing=True, decoder=False,
                    backbone_trainable=False, device_type="cpu").allocator_slack == 0


def test_memory_estimate_unit_footprints_come_from_the_registry(compose_cfg):
    """Each unit type's saved activations are measured from its own branch (meta tensors)."""
    sizes = UnitSizes.from_model(compose_cfg("search", ["model=minilm_l6"]).model)
    h, r, b, s = 384, sizes.lora_r, sizes.adapter_bottleneck, 4

    def per_token(space, inputs_kept=False):
        return peft_activation_bytes(space, sizes, h, torch.float32, s, inputs_kept=inputs_kept)[0]

    assert per_token(["lora"]) == s * (h + 2 * r)  # the shared site input + A's output at 2 sites
    assert per_token(["lora"], inputs_kept=True) == s * 2 * r
    assert per_token(["adapter"]) == s * (h + b)  # its input + the bottleneck (ReLU output)
    assert per_token(["lora", "adapter"]) == per_token(["lora"]) + per_token(["adapter"])
    assert per_token(["dora"]) > per_token(["lora"])  # the magnitude scaling keeps base and LoRA outputs
    assert set(UNIT_TYPES) >= {"lora", "adapter"}


def test_memory_estimate_counts_the_saved_tensors_of_a_cpu_step(compose_cfg):
    """The per-layer formula against what autograd really saves: a tiny BERT supernet on CPU in
    train mode (dropout on, so CPU SDPA takes its math path and keeps the probabilities)."""
    cfg = compose_cfg("search", ["model=tiny_bert", "task=rte", "train=test", "train.device=cpu",
                                 "train.batch_size=4", "train.max_length=32"])
    est = estimate_for_run(cfg, "search")
    model, _ = build_tiny(cfg.model, 2, seed=0)
    Supernet.build(model, get_family(cfg.model.family), list(cfg.search_space), UnitSizes.from_model(cfg.model),
                   int(model.config.hidden_size))
    model.train()
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    saved: dict[int, int] = {}

    def pack(t):
        ptr = t.untyped_storage().data_ptr()
        if ptr not in params:
            saved[ptr] = t.untyped_storage().nbytes()
        return t

    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, int(model.config.vocab_size), (4, 32), generator=g)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=torch.tensor([0, 1, 0, 1]))
    c = model.config
    working = 4 * (c.intermediate_size + 2 * c.hidden_size + c.num_attention_heads * 32) * 4 * 32
    kept = est.activations - working
    assert 0.95 < kept / sum(saved.values()) < 1.1, (kept, sum(saved.values()))  # 1.006 when written


def test_banner_logs_memory_estimate_and_leaves_rng(compose_cfg, caplog):
    cfg = compose_cfg("search", ["model=tiny_llama", "task=rte", "train=test"])
    state = torch.random.get_rng_state()
    with caplog.at_level(logging.INFO, logger="prunepeft"):
        log_memory_estimate("search", cfg)
    assert torch.equal(state, torch.random.get_rng_state())
    assert any("memory estimate ≈" in r.getMessage() and "activations" in r.getMessage() for r in caplog.records)
