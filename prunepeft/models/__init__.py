"""Backbones: loading (hub id, local dir, bundled package, tiny) and the model-family table."""
from prunepeft.models.families import (
    FAMILIES,
    SITES,
    Family,
    base_model_parameter_count,
    get_family,
    head_parameters,
    set_site_linear,
    site_linear,
    transformer_layers,
)
from prunepeft.models.head import start_regression_head
from prunepeft.models.loading import load_backbone, resolve_local, resolve_source
from prunepeft.models.tiny import build_tiny, build_tokenizer

__all__ = [
    "FAMILIES",
    "SITES",
    "Family",
    "base_model_parameter_count",
    "build_tiny",
    "build_tokenizer",
    "get_family",
    "head_parameters",
    "load_backbone",
    "resolve_local",
    "resolve_source",
    "set_site_linear",
    "start_regression_head",
    "site_linear",
    "transformer_layers",
]
