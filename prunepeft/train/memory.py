"""A training-memory estimate printed at the start of a run, so a user knows whether a job fits.

Three parts, in bytes (docs: the issue-12 notes; numbers are estimates, not a measurement):

- **weights**: every parameter of the model being trained (backbone, head, PEFT units) at its dtype.
- **trainable states**: per trainable parameter, its gradient (at the parameter's dtype) and AdamW's
  two fp32 moments (8 bytes).
- **activations per batch**: what autograd keeps for one micro-batch of `batch_size` sequences of
  `max_length` tokens (dynamic padding makes real batches shorter: this is the worst case). Per token
  and layer, in the spirit of Korthikanti et al. (2022), "Reducing Activation Recomputation":

  encoder (BERT/RoBERTa/DeBERTa: LayerNorm, GELU FFN)
      s·(h [qkv input] + 3h [q, k, v] + h [attention output] + h [FFN input] + 2i [fc1, GELU]
      + 2h [LayerNorm inputs]) + 2h [dropout masks, 1 byte]
  decoder (Llama/Qwen2/Mistral: RMSNorm upcast to fp32, SwiGLU FFN, grouped KV)
      s·(h [qkv input] + h + 2·kv [q, k, v] + h [attention output] + h [FFN input]
      + 4i [gate, up, SiLU, product]) + 2·4h [fp32 RMSNorm inputs]
  attention scores, eager attention only: a·T·(2s + 1) (softmax, dropout output and mask);
      fused (SDPA) attention keeps a 4-byte log-sum-exp per head instead.
  PEFT units: s·(r per LoRA/DoRA site + (h + 2·b) per adapter site) when the supernet is built.

  h = hidden size, i = intermediate size, kv = key/value width (kv heads · head dim), a = heads,
  T = max length, s = bytes of an activation (2 under bf16/fp16 weights or autocast, else 4),
  r = LoRA rank, b = adapter bottleneck. Without gradient checkpointing every layer's share is kept;
  with it only each layer's input (h·s per token) is kept, plus one layer's full share recomputed in
  backward. One more layer's share is added as the backward working set (activation gradients).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch

log = logging.getLogger(__name__)

GIB = 1024**3
ADAMW_MOMENT_BYTES = 8  # exp_avg + exp_avg_sq, fp32
_LORA_LIKE = ("lora", "dora")


@dataclass(frozen=True)
class MemoryEstimate:
    """Estimated peak training memory, in bytes, and what it assumed."""

    weights: int
    trainable_states: int
    activations: int
    trainable_params: int
    batch_size: int
    max_length: int
    gradient_checkpointing: bool

    @property
    def total(self) -> int:
        return self.weights + self.trainable_states + self.activations

    def describe(self) -> str:
        """One line for the start banner."""
        return (f"memory estimate ≈ {self.total / GIB:.2f} GiB: weights {self.weights / GIB:.2f} GiB, "
                f"trainable states {self.trainable_states / GIB:.2f} GiB ({self.trainable_params:,} params: "
                f"grads + AdamW moments), activations {self.activations / GIB:.2f} GiB per batch "
                f"({self.batch_size}×{self.max_length} tokens, gradient checkpointing "
                f"{'on' if self.gradient_checkpointing else 'off'})")


def _cfg_int(config: Any, *names: str, default: int | None = None) -> int:
    for name in names:
        value = getattr(config, name, None)
        if value is not None:
            return int(value)
    if default is None:
        raise ValueError(f"model config has none of {names}")
    return default


def activation_bytes(config: Any, *, batch_size: int, max_length: int, act_bytes: int, decoder: bool,
                     gradient_checkpointing: bool, peft_elements: int = 0) -> int:
    """Activations autograd keeps for one batch (see the module docstring for the formula).

    Args:
        config: a transformers config (hidden_size, num_hidden_layers, num_attention_heads,
            intermediate_size, optional num_key_value_heads / head_dim, _attn_implementation).
        act_bytes: bytes per activation element (2 for bf16/fp16, 4 for fp32).
        decoder: Llama-style layer (RMSNorm, SwiGLU, grouped KV) instead of a BERT-style one.
        peft_elements: activation elements the PEFT units keep per token and layer.
    """
    h = _cfg_int(config, "hidden_size", "d_model")
    n_layers = _cfg_int(config, "num_hidden_layers", "n_layer")
    heads = _cfg_int(config, "num_attention_heads", "n_head")
    inter = _cfg_int(config, "intermediate_size", default=4 * h)
    head_dim = _cfg_int(config, "head_dim", default=h // heads)
    kv = _cfg_int(config, "num_key_value_heads", default=heads) * head_dim
    s = act_bytes
    if decoder:
        per_token = s * (h + h + 2 * kv + h + h + 4 * inter) + 2 * 4 * h
    else:
        per_token = s * (h + 3 * h + h + h + 2 * inter + 2 * h) + 2 * h
    eager = getattr(config, "_attn_implementation", None) in (None, "eager")
    per_token += heads * max_length * (2 * s + 1) if eager else heads * 4
    per_token += s * peft_elements
    tokens = batch_size * max_length
    per_layer = per_token * tokens
    kept = n_layers * h * s * tokens + per_layer if gradient_checkpointing else n_layers * per_layer
    return int(kept + per_layer)


def peft_activation_elements(unit_names: list[str], lora_r: int, adapter_bottleneck: int, hidden: int) -> int:
    """Activation elements per token and layer that one layer's PEFT units keep: r per LoRA/DoRA site,
    h + 2·b (input, bottleneck, activation) per adapter site (sites from the unit-type registry)."""
    from prunepeft.peft.units import UNIT_TYPES

    total = 0
    for name in unit_names:
        sites = len(getattr(UNIT_TYPES.get(name), "sites", ()) or ())
        total += sites * (lora_r if name in _LORA_LIKE else hidden + 2 * adapter_bottleneck)
    return total


def estimate(model: torch.nn.Module, *, batch_size: int, max_length: int, gradient_checkpointing: bool,
             decoder: bool, autocast_bytes: int | None = None, peft_elements: int = 0) -> MemoryEstimate:
    """Estimate the training memory of `model` as it will be trained (its `requires_grad` flags set).

    Works on a meta-device model (only shapes and dtypes are read).

    Args:
        autocast_bytes: bytes of an autocast activation (2 under bf16/fp16 autocast), or None.
    """
    params = list(model.parameters())
    weights = sum(p.numel() * p.element_size() for p in params)
    trainable = [p for p in params if p.requires_grad]
    states = sum(p.numel() * (p.element_size() + ADAMW_MOMENT_BYTES) for p in trainable)
    weight_bytes = min((p.element_size() for p in params if p.is_floating_point()), default=4)
    act = min(weight_bytes, autocast_bytes) if autocast_bytes else weight_bytes
    acts = activation_bytes(model.config, batch_size=batch_size, max_length=max_length, act_bytes=act,
                            decoder=decoder, gradient_checkpointing=gradient_checkpointing,
                            peft_elements=peft_elements)
    return MemoryEstimate(weights=int(weights), trainable_states=int(states), activations=acts,
                          trainable_params=sum(p.numel() for p in trainable), batch_size=int(batch_size),
                          max_length=int(max_length), gradient_checkpointing=bool(gradient_checkpointing))


def _skeleton(cfg: Any) -> torch.nn.Module | None:
    """The backbone on the meta device (tiny models for real), or None when its config is not
    available offline. Weights are cast to `model.dtype`."""
    from transformers import AutoConfig, AutoModelForSequenceClassification

    from prunepeft.models.loading import DTYPES, resolve_local
    from prunepeft.models.tiny import build_tiny

    dtype = DTYPES.get(str(getattr(cfg.model, "dtype", "float32")), torch.float32)
    num_labels = int(cfg.task.num_labels)
    if str(getattr(cfg.model, "kind", "pretrained")) == "tiny":
        return build_tiny(cfg.model, num_labels, 0)[0].to(dtype)
    source = resolve_local(getattr(cfg.model, "local", None)) or getattr(cfg.model, "hub_id", None)
    if not source:
        return None
    try:
        config = AutoConfig.from_pretrained(str(source), local_files_only=True, num_labels=num_labels)
    except (OSError, ValueError):
        return None
    with torch.device("meta"):
        return AutoModelForSequenceClassification.from_config(config, dtype=dtype)


def estimate_for_run(cfg: Any, command: str, model: torch.nn.Module | None = None) -> MemoryEstimate | None:
    """The estimate for a search (the full supernet over `cfg.search_space`) or a baseline.

    A baseline is estimated as the full supernet too (an upper bound for the PEFT methods), except
    `method=fft`, which trains every weight.

    Args:
        model: the backbone to use (e.g. a meta-device model); built from `cfg.model` when None.

    Returns:
        None when the model's config is not available offline.
    """
    from prunepeft.models.families import get_family
    from prunepeft.peft.supernet import Supernet
    from prunepeft.peft.units import UnitSizes
    from prunepeft.train.device import resolve_device, resolve_precision

    model = _skeleton(cfg) if model is None else model
    if model is None:
        return None
    family = get_family(cfg.model.family)
    hidden = int(model.config.hidden_size)
    sizes = UnitSizes.from_model(cfg.model)
    space = [str(s) for s in getattr(cfg, "search_space", None) or ["lora", "adapter"]]
    peft_elements = 0
    if command == "baseline" and str(getattr(cfg, "method", "")) == "fft":
        for p in model.parameters():
            p.requires_grad_(True)
    else:
        with torch.random.fork_rng(devices=[]):  # the units' init must not move the run's RNG
            Supernet.build(model, family, space, sizes, hidden)  # freezes the backbone, injects units
        peft_elements = peft_activation_elements(space, sizes.lora_r, sizes.adapter_bottleneck, hidden)
    precision = resolve_precision(str(cfg.train.precision), resolve_device(str(cfg.train.device)))
    return estimate(model, batch_size=int(cfg.train.batch_size), max_length=int(cfg.train.max_length),
                    gradient_checkpointing=bool(getattr(cfg.train, "gradient_checkpointing", False)),
                    decoder=family.decoder, autocast_bytes=2 if precision in ("bf16", "fp16") else None,
                    peft_elements=peft_elements)
