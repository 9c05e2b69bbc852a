"""The training-memory estimate (prunepeft.train.memory) printed in the start banner."""
from __future__ import annotations

import logging

import torch
from transformers import AutoModelForSequenceClassification, BertConfig, LlamaConfig

from prunepeft.progress_log import log_memory_estimate
from prunepeft.train.memory import GIB, estimate, estimate_for_run

# Meta-Llama-3-8B's config.json, typed in (no download).
LLAMA3_8B = dict(vocab_size=128256, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                 num_attention_heads=32, num_key_value_heads=8, max_position_embeddings=8192,
                 rope_theta=500000.0, rms_norm_eps=1e-5, bos_token_id=128000, eos_token_id=128001,
                 tie_word_embeddings=False)


def test_memory_estimate_llama3_8b_meta(compose_cfg):
    """Table 3 at scale=paper (what its sweep picks: model=llama3_8b, train=default) fits 70 GiB."""
    cfg = compose_cfg("search", ["experiment=table3", "scale=paper", "model=llama3_8b", "train=default",
                                 "task=rte"])
    assert cfg.model.dtype == "bfloat16"
    config = LlamaConfig(**LLAMA3_8B, num_labels=2, pad_token_id=128001)
    with torch.device("meta"):
        model = AutoModelForSequenceClassification.from_config(config, dtype=torch.bfloat16)
    est = estimate_for_run(cfg, "search", model)
    assert est.batch_size == cfg.train.batch_size == 32 and est.max_length == cfg.train.max_length == 256
    assert est.gradient_checkpointing == bool(cfg.train.gradient_checkpointing)
    assert 13.5 * GIB < est.weights < 15 * GIB  # ~7.5 B backbone params + the supernet, bf16
    assert est.trainable_params > 0 and est.activations > 0
    assert est.total <= 70 * GIB, est.describe()
    # Gradient checkpointing keeps one hidden state per layer instead of every layer's share.
    cfg.train.gradient_checkpointing = not cfg.train.gradient_checkpointing
    with torch.device("meta"):
        model = AutoModelForSequenceClassification.from_config(config, dtype=torch.bfloat16)
    other = estimate_for_run(cfg, "search", model)
    lo, hi = sorted([est, other], key=lambda e: e.gradient_checkpointing, reverse=True)
    assert lo.activations < hi.activations / 5


def _tiny_llama() -> torch.nn.Module:
    config = LlamaConfig(vocab_size=10, hidden_size=8, intermediate_size=16, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, num_labels=2, pad_token_id=0,
                         tie_word_embeddings=False)
    return AutoModelForSequenceClassification.from_config(config, attn_implementation="sdpa")


def test_memory_estimate_matches_hand_computation():
    model = _tiny_llama()
    for name, p in model.named_parameters():
        p.requires_grad_(name.startswith("score"))
    # Params: embed 10·8 = 80; per layer q 64 + k 32 + v 32 + o 64 + gate/up/down 3·128 + 2 norms 16
    # = 592, two layers 1184; final norm 8; score 8·2 = 16 -> 1288 fp32 = 5152 bytes.
    est = estimate(model, batch_size=3, max_length=5, gradient_checkpointing=False, decoder=True)
    assert est.weights == 1288 * 4
    assert est.trainable_params == 16 and est.trainable_states == 16 * (4 + 8)
    # Per token and layer (s = 4): 4·(h + h + 2kv + h + h + 4i) + 2·4h = 4·(8+8+8+8+8+64) + 64 = 480,
    # + SDPA log-sum-exp 2 heads · 4 = 488; 15 tokens -> 7320 per layer.
    per_layer = 488 * 15
    assert est.activations == 2 * per_layer + per_layer  # two layers kept + the backward working set
    ckpt = estimate(model, batch_size=3, max_length=5, gradient_checkpointing=True, decoder=True)
    assert ckpt.activations == 2 * 8 * 4 * 15 + per_layer + per_layer  # layer inputs + 1 recomputed + working
    half = estimate(model, batch_size=3, max_length=5, gradient_checkpointing=False, decoder=True,
                    autocast_bytes=2)
    assert half.activations == 3 * ((2 * 104 + 64 + 8) * 15)
    assert half.total == half.weights + half.trainable_states + half.activations

    # Encoder, eager attention: 4·(h + 3h + h + h + 2i + 2h) + 2h = 4·96 + 16 = 400, + scores
    # a·T·(2s + 1) = 2·5·9 = 90 -> 490 per token and layer.
    bert = AutoModelForSequenceClassification.from_config(
        BertConfig(vocab_size=10, hidden_size=8, num_hidden_layers=2, num_attention_heads=2,
                   intermediate_size=16, max_position_embeddings=8), attn_implementation="eager")
    enc = estimate(bert, batch_size=3, max_length=5, gradient_checkpointing=True, decoder=False)
    assert enc.activations == 2 * 8 * 4 * 15 + 2 * 490 * 15
    assert enc.trainable_params == sum(p.numel() for p in bert.parameters())


def test_banner_logs_memory_estimate_and_leaves_rng(compose_cfg, caplog):
    cfg = compose_cfg("search", ["model=tiny_llama", "task=rte", "train=test"])
    state = torch.random.get_rng_state()
    with caplog.at_level(logging.INFO, logger="prunepeft"):
        log_memory_estimate("search", cfg)
    assert torch.equal(state, torch.random.get_rng_state())
    assert any("memory estimate ≈" in r.getMessage() and "activations" in r.getMessage() for r in caplog.records)
