"""A training-memory estimate printed at the start of a run, so a user knows whether a job fits.

Four parts, in bytes (estimates, not a measurement; BENCHMARKS.md §12b compares them with one):

- **weights**: every parameter of the model being trained (backbone, head, PEFT units) at its dtype.
- **trainable states**: per trainable parameter, its gradient (at the parameter's dtype) and AdamW's
  two fp32 moments (8 bytes).
- **activations per batch**: the peak of what autograd keeps for one micro-batch of `batch_size`
  sequences of `max_length` tokens (dynamic padding makes real batches shorter: this is the worst
  case), plus one layer's backward working set. This is what the tensor allocator holds, i.e. what
  `torch.cuda.max_memory_allocated` reports on a GPU.
- **CPU allocator slack** (CPU only): glibc's heap does not give the freed activation blocks of a
  step back, and the step's temporaries fragment it, so the process's peak RSS exceeds the tensor
  peak. Measured on MiniLM-L6 (BENCHMARKS.md §12b): 0.45–0.8 × the activations;
  `CPU_ALLOCATOR_SLACK` is their middle. With `MALLOC_MMAP_THRESHOLD_=131072` in the environment
  (large blocks always mmapped, given back on free) the peak RSS is the tensor peak, and no slack
  is added.

Activations, per token and layer, counted from the tensors autograd saves (checked against the saved
tensors of a MiniLM step). A frozen Linear saves nothing for its own weight gradient, so with a
frozen backbone (PEFT) only the tensors on the gradient path to the units are kept:

  encoder (BERT/RoBERTa/DeBERTa: post-LayerNorm, GELU FFN)
      s·(3h [q, k, v] + i [GELU input]) + 2h·n [LayerNorm inputs] + 2h·m [hidden dropout masks]
  decoder (Llama/Qwen2/Mistral: RMSNorm upcast to fp32, SwiGLU FFN)
      2·4h [fp32 RMSNorm inputs] + s·(3h [q, k, v; grouped KV is repeated to h before SDPA when a
      padding mask is passed] + 3i [gate, SiLU output, up])
  attention: where the probabilities are materialised (eager attention, or SDPA's math path, which
      CPU takes for attention dropout in training):
          a·T·(p + s) [softmax output (fp32 in decoders, p = 4), probs fed to the value matmul]
          + a·T·m [dropout mask] with attention dropout
      else a fused kernel: s·h [output] + 4·a [log-sum-exp]
  trainable backbone (method=fft): s·(3h + i) more [the inputs of qkv, attention-out, FFN-in/out]
  PEFT units: what one branch of each type saves, measured by running the branch on meta tensors
      (so a new unit type is counted without naming it here), plus, for a frozen backbone, the site
      input of the parallel units (h, shared by their sites).

  h = hidden size, i = intermediate size, a = heads, T = max length, s = bytes of an activation
  (2 under bf16/fp16 weights or autocast, else 4), n = bytes of a weight (autocast runs LayerNorm
  in fp32, so the residual stream keeps the weights' dtype), m = bytes of a dropout mask (1 on
  CUDA, where dropout keeps a bool mask; s on CPU, where it multiplies by a float noise tensor).
  Dropout is taken from the model config (hidden_dropout_prob, attention_probs_dropout_prob,
  attention_dropout).

Without gradient checkpointing every layer's share is kept; with it only each layer's input (h·s per
token) plus one layer's share, recomputed in backward. The backward working set adds one layer's
activation gradients: s·(i + 2h), plus s·a·T where probabilities are materialised.

Not modelled: CUDA context and caching-allocator fragmentation, and (on CPU) the framework's own
memory before the model loads.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

import torch

log = logging.getLogger(__name__)

GIB = 1024**3
ADAMW_MOMENT_BYTES = 8  # exp_avg + exp_avg_sq, fp32
# glibc heap kept beyond the tensor peak over CPU training steps, as a share of the activations:
# 0.46–0.79 measured on MiniLM-L6 (batch × length 32×64, 16×128, 32×128, 8×256; BENCHMARKS.md §12b).
CPU_ALLOCATOR_SLACK = 0.65


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
    allocator_slack: int = 0
    device_type: str = "cuda"

    @property
    def allocated(self) -> int:
        """What the tensor allocator holds at the peak (cf. `torch.cuda.max_memory_allocated`)."""
        return self.weights + self.trainable_states + self.activations

    @property
    def total(self) -> int:
        return self.allocated + self.allocator_slack

    def describe(self) -> str:
        """One line for the start banner."""
        slack = (f", CPU allocator slack {self.allocator_slack / GIB:.2f} GiB" if self.allocator_slack else "")
        return (f"memory estimate ≈ {self.total / GIB:.2f} GiB: weights {self.weights / GIB:.2f} GiB, "
                f"trainable states {self.trainable_states / GIB:.2f} GiB ({self.trainable_params:,} params: "
                f"grads + AdamW moments), activations {self.activations / GIB:.2f} GiB per batch "
                f"({self.batch_size}×{self.max_length} tokens, gradient checkpointing "
                f"{'on' if self.gradient_checkpointing else 'off'}){slack}")


def _cfg_int(config: Any, *names: str, default: int | None = None) -> int:
    for name in names:
        value = getattr(config, name, None)
        if value is not None:
            return int(value)
    if default is None:
        raise ValueError(f"model config has none of {names}")
    return default


def _cfg_dropout(config: Any, *names: str) -> bool:
    return any(float(getattr(config, name, 0.0) or 0.0) > 0.0 for name in names)


def activation_bytes(config: Any, *, batch_size: int, max_length: int, act_bytes: int, decoder: bool,
                     gradient_checkpointing: bool, peft_bytes: int = 0, backbone_trainable: bool = False,
                     device_type: str = "cuda", norm_bytes: int | None = None) -> int:
    """Activations autograd keeps for one batch, plus the backward working set (module docstring).

    Args:
        config: a transformers config (hidden_size, num_hidden_layers, num_attention_heads,
            intermediate_size, optional head_dim, dropout probabilities, _attn_implementation).
        act_bytes: bytes per activation element (2 for bf16/fp16, 4 for fp32).
        decoder: Llama-style layer (RMSNorm, SwiGLU) instead of a BERT-style one.
        peft_bytes: bytes the PEFT units keep per token and layer (`peft_activation_bytes`).
        backbone_trainable: the backbone's Linears train (method=fft) and so keep their inputs.
        device_type: "cuda" or "cpu" (dropout mask size, SDPA's kernel choice).
        norm_bytes: bytes of an encoder LayerNorm input (None = act_bytes). Autocast runs
            LayerNorm in fp32, so an fp32 model under bf16 autocast keeps a 4-byte residual stream.
    """
    h = _cfg_int(config, "hidden_size", "d_model")
    n_layers = _cfg_int(config, "num_hidden_layers", "n_layer")
    heads = _cfg_int(config, "num_attention_heads", "n_head")
    inter = _cfg_int(config, "intermediate_size", default=4 * h)
    s, T = act_bytes, max_length
    cpu = device_type == "cpu"
    mask = s if cpu else 1
    hidden_dropout = _cfg_dropout(config, "hidden_dropout_prob", "hidden_dropout", "resid_pdrop")
    attn_dropout = _cfg_dropout(config, "attention_probs_dropout_prob", "attention_dropout", "attn_pdrop")
    if decoder:
        per_token = 2 * 4 * h + s * (3 * h + 3 * inter)
    else:
        per_token = (norm_bytes or s) * 2 * h + s * (3 * h + inter) + (2 * h * mask if hidden_dropout else 0)
    eager = getattr(config, "_attn_implementation", None) in (None, "eager")
    probs_kept = eager or (cpu and attn_dropout)  # CPU SDPA runs its math path for dropout
    if probs_kept:
        per_token += heads * T * ((4 if decoder else s) + s + (mask if attn_dropout else 0))
    else:
        per_token += s * h + 4 * heads
    if backbone_trainable:
        per_token += s * (3 * h + inter)
    per_token += peft_bytes
    tokens = batch_size * max_length
    per_layer = per_token * tokens
    working = s * (inter + 2 * h + (heads * T if probs_kept else 0)) * tokens
    kept = n_layers * h * s * tokens + per_layer if gradient_checkpointing else n_layers * per_layer
    return int(kept + working)


def _branch_saved_bytes(unit_type: Any, sizes: Any, site: str, hidden: int, dtype: torch.dtype,
                        tokens: int) -> int:
    """Bytes autograd saves when one branch of `unit_type` runs on `tokens` tokens (meta tensors:
    nothing is computed), excluding parameters and a parallel branch's input (the site input)."""
    linear = torch.nn.Linear(hidden, hidden, device="meta", dtype=dtype).requires_grad_(False)
    branch = unit_type.make_branch(linear, sizes, site).to(device="meta", dtype=dtype).train()
    params = {id(p) for p in branch.parameters()}
    x = torch.empty(1, tokens, hidden, device="meta", dtype=dtype, requires_grad=True)
    out = linear(x)
    saved: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        base = t._base if t._base is not None else t  # a view (e.g. a weight's transpose) is its base
        if id(base) not in params and base is not x:
            saved[id(base)] = base.numel() * base.element_size()
        return t

    keep = []  # saved tensors stay alive until the sum, so their ids stay unique
    with torch.autograd.graph.saved_tensors_hooks(lambda t: keep.append(t) or pack(t), lambda t: t):
        branch(x, out) if unit_type.kind == "parallel" else branch(out)
    return sum(saved.values())


def peft_activation_bytes(unit_names: list[str], sizes: Any, hidden: int, dtype: torch.dtype,
                          act_bytes: int, inputs_kept: bool) -> tuple[int, int]:
    """(bytes per token, fixed bytes) that one layer's PEFT units keep for backward.

    Each registered type's branch is run on meta tensors of 1 and 2 tokens at every site, so the
    per-token part and the token-independent part (e.g. DoRA's weight norm) are the type's own.
    A frozen backbone (`inputs_kept` False) adds the parallel units' site input once (h·s).
    Sites are taken as h -> h Linears.
    """
    from prunepeft.peft import UNIT_TYPES

    per_token = fixed = 0
    parallel = False
    for name in unit_names:
        unit_type = UNIT_TYPES[name]
        parallel |= unit_type.kind == "parallel"
        for site in unit_type.sites:
            try:
                one, two = (_branch_saved_bytes(unit_type, sizes, site, hidden, dtype, n) for n in (1, 2))
            except Exception:  # noqa: BLE001 - a branch that cannot run on meta: its size, and its input if serial
                size = unit_type.site_size(sizes, site)
                one = two = 0
                per_token += act_bytes * (size + (hidden if unit_type.kind == "serial" else 0))
            per_token += two - one
            fixed += 2 * one - two
    if parallel and not inputs_kept:
        per_token += hidden * act_bytes
    return per_token, fixed


def _glibc_returns_blocks() -> bool:
    """True when MALLOC_MMAP_THRESHOLD_ (read by glibc at start) is at most 1 MiB: every activation
    block is then mmapped and unmapped on free, and the peak RSS is the tensor peak (§12b)."""
    value = os.environ.get("MALLOC_MMAP_THRESHOLD_", "")
    return value.isdigit() and int(value) <= 2**20


def estimate(model: torch.nn.Module, *, batch_size: int, max_length: int, gradient_checkpointing: bool,
             decoder: bool, autocast_bytes: int | None = None, peft_bytes: int = 0, peft_fixed_bytes: int = 0,
             device_type: str = "cuda", backbone_trainable: bool | None = None) -> MemoryEstimate:
    """Estimate the training memory of `model` as it will be trained (its `requires_grad` flags set).

    Works on a meta-device model (only shapes and dtypes are read).

    Args:
        autocast_bytes: bytes of an autocast activation (2 under bf16/fp16 autocast), or None.
        peft_bytes, peft_fixed_bytes: one layer's PEFT activations per token and fixed
            (`peft_activation_bytes`).
        device_type: "cuda" or "cpu"; CPU adds the allocator slack.
        backbone_trainable: None = whether the input embeddings train (method=fft).
    """
    params = list(model.parameters())
    weights = sum(p.numel() * p.element_size() for p in params)
    trainable = [p for p in params if p.requires_grad]
    states = sum(p.numel() * (p.element_size() + ADAMW_MOMENT_BYTES) for p in trainable)
    weight_bytes = min((p.element_size() for p in params if p.is_floating_point()), default=4)
    act = min(weight_bytes, autocast_bytes) if autocast_bytes else weight_bytes
    if backbone_trainable is None:
        embeddings = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
        backbone_trainable = bool(embeddings is not None and embeddings.weight.requires_grad)
    n_layers = _cfg_int(model.config, "num_hidden_layers", "n_layer")
    acts = activation_bytes(model.config, batch_size=batch_size, max_length=max_length, act_bytes=act,
                            decoder=decoder, gradient_checkpointing=gradient_checkpointing,
                            peft_bytes=peft_bytes, backbone_trainable=backbone_trainable,
                            device_type=device_type, norm_bytes=weight_bytes) + n_layers * peft_fixed_bytes
    slack = int(CPU_ALLOCATOR_SLACK * acts) if device_type == "cpu" and not _glibc_returns_blocks() else 0
    return MemoryEstimate(weights=int(weights), trainable_states=int(states), activations=acts,
                          trainable_params=sum(p.numel() for p in trainable), batch_size=int(batch_size),
                          max_length=int(max_length), gradient_checkpointing=bool(gradient_checkpointing),
                          allocator_slack=slack, device_type=device_type)


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


def estimate_for_run(cfg: Any, command: str, model: torch.nn.Module | None = None,
                     device: torch.device | str | None = None) -> MemoryEstimate | None:
    """The estimate for a search (the full supernet over `cfg.search_space`) or a baseline.

    A baseline is estimated as the full supernet too (an upper bound for the PEFT methods), except
    `method=fft`, which trains every weight.

    Args:
        model: the backbone to use (e.g. a meta-device model); built from `cfg.model` when None.
        device: the device to estimate for; None = `cfg.train.device` resolved here. A CUDA device
            on a machine without one takes `train.precision=auto` as bf16 (what a bf16 GPU picks).

    Returns:
        None when the model's config is not available offline.
    """
    from prunepeft.models.families import get_family
    from prunepeft.peft import Supernet, UnitSizes
    from prunepeft.train.device import resolve_device, resolve_precision

    model = _skeleton(cfg) if model is None else model
    if model is None:
        return None
    family = get_family(cfg.model.family)
    hidden = int(model.config.hidden_size)
    sizes = UnitSizes.from_model(cfg.model)
    space = [str(s) for s in getattr(cfg, "search_space", None) or ["lora", "adapter"]]
    device = resolve_device(str(cfg.train.device)) if device is None else torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        precision = "bf16" if str(cfg.train.precision) == "auto" else str(cfg.train.precision)
    else:
        precision = resolve_precision(str(cfg.train.precision), device)
    autocast_bytes = 2 if precision in ("bf16", "fp16") else None
    fft = command == "baseline" and str(getattr(cfg, "method", "")) == "fft"
    peft_bytes = peft_fixed = 0
    if fft:
        for p in model.parameters():
            p.requires_grad_(True)
    else:
        with torch.random.fork_rng(devices=[]):  # the units' init must not move the run's RNG
            Supernet.build(model, family, space, sizes, hidden)  # freezes the backbone, injects units
            dtype = next(model.parameters()).dtype
            act = min(dtype.itemsize, autocast_bytes or dtype.itemsize)
            act_dtype = dtype if act == dtype.itemsize else torch.bfloat16  # the branches run autocast
            peft_bytes, peft_fixed = peft_activation_bytes(space, sizes, hidden, act_dtype, act, inputs_kept=False)
    return estimate(model, batch_size=int(cfg.train.batch_size), max_length=int(cfg.train.max_length),
                    gradient_checkpointing=bool(getattr(cfg.train, "gradient_checkpointing", False)),
                    decoder=family.decoder, autocast_bytes=autocast_bytes, peft_bytes=peft_bytes,
                    peft_fixed_bytes=peft_fixed, device_type=device.type, backbone_trainable=fft)
