"""Compose a command's config in Python, exactly as the CLI does (minus Hydra's run directory).

    from prunepeft.config.compose import compose_config
    cfg = compose_config("search", ["task=sst2", "model=minilm_l6", "search.k=4"])

For scripts and notebooks that call the commands' Python entry points (benchmarks do).
"""
from __future__ import annotations

from collections.abc import Sequence

from omegaconf import DictConfig


def compose_config(command: str, overrides: Sequence[str] = ()) -> DictConfig:
    """`conf/<command>.yaml` composed with `overrides` and validated against the schemas."""
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    from prunepeft.config.schema import register_configs

    register_configs()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_module(config_module="prunepeft.conf", version_base="1.3"):
            return compose(config_name=command, overrides=list(overrides), return_hydra_config=False)
    finally:
        GlobalHydra.instance().clear()
