"""Model families: where each architecture keeps the Linears that PEFT units attach to.

A unit (docs/method.md#supernet-and-units) attaches to named *sites* inside every transformer layer:
`query`/`value` (LoRA, DoRA: the attention query and value projections), `attn_out` (Houlsby's
first adapter, after the attention output projection) and `ffn_out` (the Pfeiffer adapter, after
the FFN output projection). This table maps those sites to module paths for each Hugging Face
`*ForSequenceClassification` class, and says which parameters form the task head, so the budget's
denominator (docs/method.md#budget: the base model, embeddings and pooler included, head excluded)
is counted in one place.

Head choices (what is excluded from the base count and trained as the head):
- bert: `classifier`. BERT's pooler belongs to the pretrained base model (it is in the checkpoint).
- roberta: `classifier` (its `dense` + `out_proj`). HF builds RoBERTa's sequence classifier
  without the base pooler, so no pooler is counted.
- deberta (deberta-v2/v3): `pooler` + `classifier`. HF's `ContextPooler` lives outside the base
  model and is not in the released DeBERTa checkpoints (it is newly initialised), so it is
  task-specific: counted and trained as head.
- llama, qwen2, mistral: `score`.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from torch import nn

from prunepeft.errors import UserError, choice_error

SITES = ("query", "value", "attn_out", "ffn_out")


@dataclass(frozen=True)
class Family:
    """Where one architecture family keeps its layers, PEFT sites and task head.

    Attributes:
        name: registry key (`model.family` in the config).
        layers_path: dotted path from the `*ForSequenceClassification` model to its layer list.
        sites: site name ("query", "value", "attn_out", "ffn_out") -> dotted path inside a layer.
        head_prefixes: module names (at the top of the model) whose parameters form the task head.
        decoder: a decoder-only model (needs a pad token; classifies from the last token).
        model_types: HF `config.model_type` values this family handles (checked when loading).
    """

    name: str
    layers_path: str
    sites: dict[str, str] = field(hash=False)  # a dict is unhashable; the name identifies a family
    head_prefixes: tuple[str, ...]
    decoder: bool
    model_types: tuple[str, ...] = field(default=())


_BERT_SITES = {
    "query": "attention.self.query",
    "value": "attention.self.value",
    "attn_out": "attention.output.dense",
    "ffn_out": "output.dense",
}
_DEBERTA_SITES = {
    "query": "attention.self.query_proj",
    "value": "attention.self.value_proj",
    "attn_out": "attention.output.dense",
    "ffn_out": "output.dense",
}
_DECODER_SITES = {
    "query": "self_attn.q_proj",
    "value": "self_attn.v_proj",
    "attn_out": "self_attn.o_proj",
    "ffn_out": "mlp.down_proj",
}

FAMILIES: dict[str, Family] = {
    "bert": Family("bert", "bert.encoder.layer", _BERT_SITES, ("classifier",), False, ("bert",)),
    "roberta": Family(
        "roberta", "roberta.encoder.layer", _BERT_SITES, ("classifier",), False, ("roberta", "xlm-roberta")
    ),
    "deberta": Family(
        "deberta", "deberta.encoder.layer", _DEBERTA_SITES, ("pooler", "classifier"), False, ("deberta-v2",)
    ),
    "llama": Family("llama", "model.layers", _DECODER_SITES, ("score",), True, ("llama",)),
    "qwen2": Family("qwen2", "model.layers", _DECODER_SITES, ("score",), True, ("qwen2",)),
    "mistral": Family("mistral", "model.layers", _DECODER_SITES, ("score",), True, ("mistral",)),
}

# Spellings users are likely to type for the same family (HF model_type names).
_ALIASES = {"deberta-v2": "deberta", "deberta_v2": "deberta", "deberta-v3": "deberta", "qwen": "qwen2"}


def register_family(name: str, family: Family) -> Family:
    """Add a model family from outside the package (the `prunepeft.families` entry points)."""
    if name in FAMILIES and FAMILIES[name] is not family:
        raise ValueError(f"model family {name!r} is already registered")
    FAMILIES[name] = family
    return family


def get_family(name: str) -> Family:
    """Look up a family by name (or a common alias such as `deberta-v2`).

    Raises:
        UserError: naming the unknown family and the valid choices.
    """
    key = _ALIASES.get(str(name).lower(), str(name).lower())
    if key not in FAMILIES:
        raise choice_error("model family", name, FAMILIES)
    return FAMILIES[key]


def _get_path(root: nn.Module, path: str, family: Family, what: str) -> nn.Module:
    try:
        return root.get_submodule(path)
    except AttributeError:
        raise UserError(
            f"{type(root).__name__} has no module {path!r} ({what} of model family {family.name!r}); "
            f"set model.family to the checkpoint's architecture, one of: {', '.join(sorted(FAMILIES))}"
        ) from None


def transformer_layers(model: nn.Module, family: Family) -> list[nn.Module]:
    """The model's transformer layers, in depth order."""
    return list(_get_path(model, family.layers_path, family, "layer list"))


def _site_path(family: Family, site: str) -> str:
    if site not in family.sites:
        raise choice_error("PEFT site", site, family.sites)
    return family.sites[site]


def site_linear(layer: nn.Module, family: Family, site: str) -> nn.Linear:
    """The module at `site` of one layer: the backbone's nn.Linear (or whatever replaced it).

    After `set_site_linear` this returns the replacement (e.g. a PEFT wrapper).
    """
    return _get_path(layer, _site_path(family, site), family, f"site {site!r}")  # type: ignore[return-value]


def set_site_linear(layer: nn.Module, family: Family, site: str, module: nn.Module) -> None:
    """Replace the module at `site` of one layer by `module` (e.g. a wrapper holding PEFT branches)."""
    parent_path, _, attr = _site_path(family, site).rpartition(".")
    parent = _get_path(layer, parent_path, family, f"site {site!r}") if parent_path else layer
    if not hasattr(parent, attr):
        raise UserError(f"{type(layer).__name__} has no module {attr!r} for site {site!r} ({family.name})")
    setattr(parent, attr, module)


def _is_head(name: str, family: Family) -> bool:
    return any(name == p or name.startswith(p + ".") for p in family.head_prefixes)


def head_parameters(model: nn.Module, family: Family) -> list[tuple[str, nn.Parameter]]:
    """(name, parameter) pairs of the task head (see the module docstring for each family)."""
    return [(n, p) for n, p in model.named_parameters() if _is_head(n, family)]


def base_model_parameter_count(
    model: nn.Module, family: Family, exclude: Iterable[nn.Parameter] = ()
) -> int:
    """Parameters of the base model: everything except the task head (embeddings, pooler included).

    The budget's denominator (docs/method.md#budget). Tied weights count once. Buffers (e.g. BERT's
    `position_ids`) are not parameters and are not counted.

    Args:
        model: a `*ForSequenceClassification` model.
        family: its family.
        exclude: parameters to leave out as well, by identity; pass the PEFT units' parameters
            when counting a model that already has units injected.
    """
    skip = {id(p) for p in exclude}
    return sum(
        p.numel() for n, p in model.named_parameters() if not _is_head(n, family) and id(p) not in skip
    )
