"""Opt-in early pruning of the backbone (Light-PEFT's "masked early pruning", issue 14 Deliver 4).

Off by default (`backbone_prune.enabled=false`). Three steps, each usable alone:

1. **Masks** (`BackboneMasks.install`): one learnable scalar per attention head and per FFN neuron,
   initialised to 1.
   - The head mask is a forward pre-hook on the attention-output block (`attention.output`, whose
     first input is the concatenated per-head context): it scales each head's slice. This is
     attention-implementation agnostic (eager and SDPA alike) and does not depend on whether the
     `attn_out` Linear is wrapped by a PEFT unit.
   - The neuron mask is a forward hook on the FFN's `intermediate` block (post-activation output).
   - At 1 the masks change nothing, bit for bit (x * 1.0 == x).
2. **Estimation** (`L1Penalty`): the masks train together with whatever else is trained, with
   λ · Σ|m| added to the loss (λ = 1e-4, the plain sum, as Light-PEFT does). The penalty's gradient
   λ · sign(m) is added to each mask's `.grad` in `on_before_optimizer_step`, so the training loop
   needs no change (the task loss's gradient is already there; this is exactly d/dm of L_task + λΣ|m|).
3. **Selection and removal** (`select`, `prune`): heads are cut per layer by the `heads` quantile of
   the raw mask values (kept if strictly above it, at least one head per layer), neurons globally by
   the `ffn` quantile (at least one per layer). The kept indices (`KeptStructures`) are then applied
   physically: query/key/value rows and the attention-output dense columns per head,
   intermediate.dense rows and the FFN output.dense columns per neuron; the attention module's
   `num_attention_heads` / `all_head_size` are updated (transformers 5.x has no `prune_heads` and
   reshapes with -1, so the head size is all it reads). Learned mask values are thrown away, not
   folded into the weights (as Light-PEFT does).

transformers cannot rebuild a pruned model from its config, so the run saves the kept indices
(`backbone_prune.json`, `KeptStructures.save`) and every loader re-prunes a freshly loaded backbone
with `prune(model, family, KeptStructures.load(path))` before loading PEFT weights.

Families: bert and roberta (same module layout), and the decoders llama and qwen2:

- the head mask is a forward pre-hook on `self_attn.o_proj` (its input is the concatenated per-head
  context), the neuron mask a forward pre-hook on `mlp.down_proj` (its input is act(gate) · up);
- under grouped-query attention (`num_key_value_heads` < `num_attention_heads`) a key/value head
  serves a group of query heads, so heads are cut by whole groups: a group's value is the mean of
  its query heads' masks, and a cut group loses its query rows, its key and value rows and its
  o_proj columns (with one query head per key/value head this is the per-head rule above);
- a neuron's gate_proj and up_proj rows and down_proj column go.

Prune BEFORE the PEFT units are injected: `prune` refuses sites already wrapped by a unit. The
masks' hooks sit on modules the units do not replace (bert: the attention-output block; decoders:
o_proj/down_proj themselves, whose serial units act on their output).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from prunepeft.run import outputs
from prunepeft.errors import UserError
from prunepeft.models.families import Family, transformer_layers
from prunepeft.train.callbacks import Callback

FILE = outputs.BACKBONE_PRUNE
L1_COEF = 1e-4

# Module paths inside one transformer layer, per family (bert and roberta share HF's layout).
_BERT_LAYOUT = {
    "kind": "encoder",
    "self": "attention.self",  # has query/key/value, num_attention_heads, attention_head_size
    "attn_output": "attention.output",  # forward(context, residual): the head mask scales `context`
    "attn_out_dense": "attention.output.dense",
    "ffn_in": "intermediate.dense",
    "ffn_act": "intermediate",  # output = act(ffn_in(x)): the neuron mask scales it
    "ffn_out": "output.dense",
}
# Decoders (HF Llama layout): heads are sized from q_proj's rows (the config is shared by the layers).
_DECODER_LAYOUT = {
    "kind": "decoder",
    "self": "self_attn",  # has head_dim and num_key_value_groups (query heads per key/value head)
    "q": "self_attn.q_proj", "k": "self_attn.k_proj", "v": "self_attn.v_proj",
    "attn_out_dense": "self_attn.o_proj",  # its input is the per-head context: the head mask's pre-hook
    "gate": "mlp.gate_proj", "up": "mlp.up_proj",
    "ffn_out": "mlp.down_proj",  # its input is act(gate) * up: the neuron mask's pre-hook
}
LAYOUTS: dict[str, dict[str, str]] = {"bert": _BERT_LAYOUT, "roberta": _BERT_LAYOUT, "llama": _DECODER_LAYOUT,
                                      "qwen2": _DECODER_LAYOUT}


def layout(family: Family) -> dict[str, str]:
    """The module paths of `family`, or a UserError naming the supported families."""
    if family.name not in LAYOUTS:
        raise UserError(f"backbone_prune: model family {family.name!r} is not supported; "
                        f"supported: {', '.join(sorted(LAYOUTS))}")
    return LAYOUTS[family.name]


def _heads(layer: nn.Module, lay: dict[str, str]) -> tuple[int, int]:
    """(number of (query) heads, head size) of one layer's self-attention."""
    attn = layer.get_submodule(lay["self"])
    if lay["kind"] == "decoder":
        size = int(attn.head_dim)
        return int(layer.get_submodule(lay["q"]).out_features) // size, size
    return int(attn.num_attention_heads), int(attn.attention_head_size)


def _group(layer: nn.Module, lay: dict[str, str]) -> int:
    """Query heads per key/value head (1 for encoders and multi-head decoders)."""
    return int(getattr(layer.get_submodule(lay["self"]), "num_key_value_groups", 1)) if lay["kind"] == "decoder" else 1


def _ffn_size(layer: nn.Module, lay: dict[str, str]) -> int:
    return int(layer.get_submodule(lay["gate"] if lay["kind"] == "decoder" else lay["ffn_in"]).out_features)


class BackboneMasks(nn.Module):
    """Head and neuron masks of every layer, installed as hooks on the backbone.

    `heads[l]` has one scalar per head of layer l, `neurons[l]` one per FFN neuron; all start at 1.
    The masks are registered as parameters of this module, NOT of the model, so the model's
    state_dict and parameter counts are untouched. `remove()` takes the hooks out.
    """

    def __init__(self, model: nn.Module, family: Family) -> None:
        super().__init__()
        lay = layout(family)
        layers = transformer_layers(model, family)
        ref = next(model.parameters())
        kw = {"device": ref.device, "dtype": torch.float32}
        self.head_size = [_heads(layer, lay)[1] for layer in layers]
        self.group = [_group(layer, lay) for layer in layers]  # heads are cut by groups of this size
        self.heads = nn.ParameterList(nn.Parameter(torch.ones(_heads(layer, lay)[0], **kw)) for layer in layers)
        self.neurons = nn.ParameterList(nn.Parameter(torch.ones(_ffn_size(layer, lay), **kw)) for layer in layers)
        self._handles: list[Any] = []
        decoder = lay["kind"] == "decoder"
        for i, layer in enumerate(layers):
            head_site = layer.get_submodule(lay["attn_out_dense"] if decoder else lay["attn_output"])
            self._handles.append(head_site.register_forward_pre_hook(self._head_hook(i), with_kwargs=True))
            if decoder:
                self._handles.append(layer.get_submodule(lay["ffn_out"]).register_forward_pre_hook(
                    self._neuron_pre_hook(i), with_kwargs=True))
            else:
                self._handles.append(layer.get_submodule(lay["ffn_act"]).register_forward_hook(self._neuron_hook(i)))

    @classmethod
    def install(cls, model: nn.Module, family: Family) -> "BackboneMasks":
        return cls(model, family)

    def _head_hook(self, i: int):
        def hook(module, args, kwargs):
            context, rest = args[0], args[1:]
            m = self.heads[i].to(context.dtype)
            shaped = context.view(*context.shape[:-1], m.numel(), self.head_size[i]) * m[:, None]
            return (shaped.view(context.shape), *rest), kwargs
        return hook

    def _neuron_hook(self, i: int):
        def hook(module, args, output):
            return output * self.neurons[i].to(output.dtype)
        return hook

    def _neuron_pre_hook(self, i: int):
        def hook(module, args, kwargs):
            return (args[0] * self.neurons[i].to(args[0].dtype), *args[1:]), kwargs
        return hook

    def remove(self) -> None:
        """Take the hooks out of the model (the masks' values stay readable)."""
        for h in self._handles:
            h.remove()
        self._handles = []

    def values(self) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """(head masks per layer, neuron masks per layer) as float64 arrays."""
        return ([m.detach().double().cpu().numpy() for m in self.heads],
                [m.detach().double().cpu().numpy() for m in self.neurons])

    def l1(self) -> torch.Tensor:
        """Σ|m| over every mask (the penalty without λ)."""
        return sum(m.abs().sum() for m in self.parameters())  # type: ignore[return-value]


class L1Penalty(Callback):
    """Adds the gradient of λ · Σ|m| (= λ · sign(m)) to every mask before the optimizer step.

    Equivalent to adding the penalty to the loss (the loop's gradients are of the mean loss over
    the step's rows; the penalty is per step, as in Light-PEFT's trainer). Call it before any
    callback that reads mask gradients.
    """

    def __init__(self, masks: BackboneMasks, coef: float = L1_COEF) -> None:
        self.masks, self.coef = masks, float(coef)

    def on_before_optimizer_step(self, step: int) -> None:
        with torch.no_grad():
            for m in self.masks.parameters():
                g = self.coef * torch.sign(m)
                if m.grad is None:
                    m.grad = g.clone()
                else:
                    m.grad.add_(g)


@dataclass
class KeptStructures:
    """The kept head and neuron indices of every layer (sorted ascending), and the original sizes."""

    heads: list[list[int]]
    neurons: list[list[int]]
    num_heads: int
    intermediate_size: int

    def counts(self) -> tuple[int, int]:
        """(heads kept, neurons kept) over all layers."""
        return sum(map(len, self.heads)), sum(map(len, self.neurons))

    def to_dict(self) -> dict[str, Any]:
        h, n = self.counts()
        return {"num_heads": self.num_heads, "intermediate_size": self.intermediate_size,
                "heads_kept": h, "neurons_kept": n, "heads": self.heads, "neurons": self.neurons}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "KeptStructures":
        return cls([list(map(int, h)) for h in data["heads"]], [list(map(int, n)) for n in data["neurons"]],
                   int(data["num_heads"]), int(data["intermediate_size"]))

    def save(self, path: Path | str) -> None:
        from prunepeft.run.io import atomic_write_text
        atomic_write_text(Path(path), json.dumps(self.to_dict(), indent=1) + "\n")

    @classmethod
    def load(cls, path: Path | str) -> "KeptStructures":
        return cls.from_dict(json.loads(Path(path).read_text()))


def _cut_count(n: int, q: float) -> int:
    """How many of n values Light-PEFT's rule "keep m > the q-quantile" cuts when the values are
    distinct: those at or below numpy's q-quantile position, computed on the ranks 0..n-1 so that
    ties among the values cannot make it cut more (masks that never moved would otherwise all sit at
    the quantile and all be cut)."""
    ranks = np.arange(n)
    return int(np.sum(ranks <= np.quantile(ranks, q)))


def _kept_after_cut(values: np.ndarray, cut: int, at_least: int = 1) -> list[int]:
    """Indices left after cutting the `cut` lowest values (ties: the lower index goes first), at least
    `at_least` kept (the largest ones)."""
    order = np.argsort(values, kind="stable")
    kept = np.sort(order[min(cut, len(values) - at_least):])
    return [int(i) for i in kept]


def select(masks: BackboneMasks, heads: float, ffn: float) -> KeptStructures:
    """Kept structures from the masks' raw values (not |m|), Light-PEFT's rule.

    Args:
        heads: fraction of heads to cut in each layer (the per-layer quantile q; kept if m > q-quantile).
        ffn: fraction of FFN neurons to cut over all layers together (global quantile).
    Every layer keeps at least one head and one neuron. A fraction of 0 keeps everything. The
    number cut is the one the quantile rule cuts on distinct values (`_cut_count`), so tied mask
    values never cut more than the fraction asks.
    Under grouped-query attention the per-layer cut is over key/value groups, each valued by the
    mean of its query heads' masks; the kept heads are those of the kept groups.
    """
    for name, q in (("heads", heads), ("ffn", ffn)):
        if not 0.0 <= float(q) < 1.0:
            raise UserError(f"backbone_prune.{name} must be in [0, 1), got {q}")
    head_vals, neuron_vals = masks.values()
    kept_heads = []
    for v, g in zip(head_vals, getattr(masks, "group", [1] * len(head_vals))):
        groups = v.reshape(-1, g).mean(1)  # g = 1: the heads themselves
        kept = list(range(len(groups))) if heads == 0 else _kept_after_cut(groups, _cut_count(len(groups), heads))
        kept_heads.append([k * g + j for k in kept for j in range(g)])
    if ffn == 0:
        kept_neurons = [list(range(len(v))) for v in neuron_vals]
    else:
        # One global order over all layers' neurons; ties go round-robin over the layers (position in
        # the layer, then layer), so tied masks thin every layer alike; a layer left empty keeps its
        # largest neuron.
        flat = np.concatenate(neuron_vals)
        position = np.concatenate([np.arange(len(v)) for v in neuron_vals])
        layer = np.concatenate([np.full(len(v), i) for i, v in enumerate(neuron_vals)])
        order = np.lexsort((layer, position, flat))
        cut_flat = np.zeros(len(flat), dtype=bool)
        cut_flat[order[:_cut_count(len(flat), ffn)]] = True
        kept_neurons, start = [], 0
        for v in neuron_vals:
            cut = cut_flat[start:start + len(v)]
            start += len(v)
            kept_neurons.append(_kept_after_cut(v, int(cut.sum())) if cut.all() else
                                [int(i) for i in np.flatnonzero(~cut)])
    return KeptStructures(kept_heads, kept_neurons, len(head_vals[0]), len(neuron_vals[0]))


def _slice_linear(linear: nn.Linear, index: torch.Tensor, dim: int) -> nn.Linear:
    """A new Linear keeping `index` along `dim` of the weight (0 = outputs, 1 = inputs); dtype,
    device and requires_grad preserved."""
    if type(linear) is not nn.Linear:
        raise UserError(f"backbone_prune: expected a plain nn.Linear, found {type(linear).__name__}; "
                        "prune the backbone before PEFT units are injected")
    index = index.to(linear.weight.device)
    w = linear.weight.detach().index_select(dim, index).clone()
    bias = linear.bias is not None
    new = nn.Linear(w.shape[1], w.shape[0], bias=bias, device=w.device, dtype=w.dtype)
    with torch.no_grad():
        new.weight.copy_(w)
        if bias:
            new.bias.copy_(linear.bias.detach() if dim == 1 else linear.bias.detach()[index])
    new.weight.requires_grad_(linear.weight.requires_grad)
    if bias:
        new.bias.requires_grad_(linear.bias.requires_grad)
    return new


def _replace(layer: nn.Module, path: str, module: nn.Module) -> None:
    parent, _, attr = path.rpartition(".")
    setattr(layer.get_submodule(parent) if parent else layer, attr, module)


def prune(model: nn.Module, family: Family, kept: KeptStructures) -> None:
    """Physically remove every head and neuron not in `kept`, in place.

    Idempotent only on a fresh backbone: call it once, on an unpruned model, before PEFT units.
    """
    lay = layout(family)
    layers = transformer_layers(model, family)
    if len(kept.heads) != len(layers) or len(kept.neurons) != len(layers):
        raise UserError(f"backbone_prune: the kept indices are for {len(kept.heads)} layers, the model has {len(layers)}")
    if lay["kind"] == "decoder":
        for layer, heads, neurons in zip(layers, kept.heads, kept.neurons):
            _prune_decoder_layer(layer, lay, kept, heads, neurons)
        return
    for layer, heads, neurons in zip(layers, kept.heads, kept.neurons):
        attn = layer.get_submodule(lay["self"])
        n_heads, size = int(attn.num_attention_heads), int(attn.attention_head_size)
        if n_heads != kept.num_heads or layer.get_submodule(lay["ffn_in"]).out_features != kept.intermediate_size:
            raise UserError("backbone_prune: the model is already pruned or does not match the kept indices")
        if not heads or not neurons:
            raise UserError("backbone_prune: every layer must keep at least one head and one neuron")
        if len(heads) < n_heads:
            idx = torch.tensor([h * size + j for h in heads for j in range(size)], dtype=torch.long)
            for proj in ("query", "key", "value"):
                setattr(attn, proj, _slice_linear(getattr(attn, proj), idx, 0))
            _replace(layer, lay["attn_out_dense"], _slice_linear(layer.get_submodule(lay["attn_out_dense"]), idx, 1))
            attn.num_attention_heads = len(heads)
            attn.all_head_size = len(heads) * size
        if len(neurons) < kept.intermediate_size:
            idx = torch.tensor(neurons, dtype=torch.long)
            _replace(layer, lay["ffn_in"], _slice_linear(layer.get_submodule(lay["ffn_in"]), idx, 0))
            _replace(layer, lay["ffn_out"], _slice_linear(layer.get_submodule(lay["ffn_out"]), idx, 1))


def _prune_decoder_layer(layer: nn.Module, lay: dict[str, str], kept: KeptStructures, heads: list[int],
                         neurons: list[int]) -> None:
    """`prune` for one decoder layer: whole key/value groups of heads, then FFN neurons."""
    n_heads, size = _heads(layer, lay)
    g = _group(layer, lay)
    if n_heads != kept.num_heads or _ffn_size(layer, lay) != kept.intermediate_size:
        raise UserError("backbone_prune: the model is already pruned or does not match the kept indices")
    if not heads or not neurons:
        raise UserError("backbone_prune: every layer must keep at least one head and one neuron")
    groups = sorted({h // g for h in heads})
    if sorted(heads) != [k * g + j for k in groups for j in range(g)]:
        raise UserError(f"backbone_prune: under grouped-query attention heads go by whole groups of {g}; "
                        f"the kept heads {heads} split a group")
    if len(heads) < n_heads:
        q_idx = torch.tensor([h * size + j for h in heads for j in range(size)], dtype=torch.long)
        kv_idx = torch.tensor([k * size + j for k in groups for j in range(size)], dtype=torch.long)
        for key, idx, dim in (("q", q_idx, 0), ("k", kv_idx, 0), ("v", kv_idx, 0), ("attn_out_dense", q_idx, 1)):
            _replace(layer, lay[key], _slice_linear(layer.get_submodule(lay[key]), idx, dim))
    if len(neurons) < kept.intermediate_size:
        idx = torch.tensor(neurons, dtype=torch.long)
        for key, dim in (("gate", 0), ("up", 0), ("ffn_out", 1)):
            _replace(layer, lay[key], _slice_linear(layer.get_submodule(lay[key]), idx, dim))


def removed_params(hidden: int, head_size: int, kept: KeptStructures, layers: int, bias: bool = True) -> int:
    """Closed form of the parameters `prune` removes (bert/roberta layout, biased Linears).

    A head costs 3·(hidden·d + d) for q/k/v rows plus hidden·d for the out-dense columns;
    a neuron costs hidden + 1 (ffn-in row and bias) plus hidden (ffn-out column).
    """
    b = 1 if bias else 0
    heads_cut = layers * kept.num_heads - kept.counts()[0]
    neurons_cut = layers * kept.intermediate_size - kept.counts()[1]
    return heads_cut * (3 * (hidden * head_size + b * head_size) + hidden * head_size) + neurons_cut * (2 * hidden + b)


def summary_fields(params_before: int, params_after: int, kept: KeptStructures, heads: float, ffn: float) -> dict:
    """summary.json's `backbone` entry."""
    h, n = kept.counts()
    return {"heads": float(heads), "ffn": float(ffn), "params_before": int(params_before),
            "params_after": int(params_after), "heads_kept": h, "neurons_kept": n,
            "fraction_removed": round(1 - params_after / max(1, params_before), 6)}


def estimation_steps(train_steps: int, minimum: int = 100, fraction: float = 0.04) -> int:
    """Light-PEFT-sized estimation: max(minimum, ⌈fraction × train_steps⌉) optimizer steps."""
    return max(int(minimum), math.ceil(float(fraction) * int(train_steps)))
