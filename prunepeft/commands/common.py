"""Shared plumbing for the Hydra entry points of every command."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from prunepeft.errors import user_errors


def hydra_run_dir() -> Path:
    """The output directory Hydra chose for this job (`hydra.run.dir` / sweep subdir)."""
    return Path(HydraConfig.get().runtime.output_dir)


def run_in_hydra(fn: Callable[[DictConfig, Path], Any], cfg: DictConfig) -> Any:
    """Call a command's `run(cfg, run_dir)` turning UserErrors into exit code 2."""
    with user_errors():
        return fn(cfg, hydra_run_dir())
