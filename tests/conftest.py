"""Shared fixtures: composed configs (Hydra compose API), real GLUE slices, tiny models."""
from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
import torch

from prunepeft.config.compose import compose_config  # noqa: F401 - the tests' compose is the package's
from prunepeft.plugins import load as load_plugins

load_plugins()  # the built-in arms (and any installed plug-in), as the commands load them

REPO = Path(__file__).resolve().parents[1]
GLUE_DIR = REPO.parent / "shared" / "data" / "glue"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Tiny models: one thread is much faster than two on a loaded 2-core machine (no oversubscription).
torch.set_num_threads(1)
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def glue_dir() -> Path:
    """Real GLUE parquet files (`../shared/data/glue`, see its README)."""
    if not (GLUE_DIR / "rte" / "train.parquet").exists():
        pytest.skip(f"real GLUE data not found at {GLUE_DIR}")
    return GLUE_DIR


@pytest.fixture
def compose_cfg():
    """Fixture form of `compose_config`."""
    return compose_config


def tiny_overrides_for(glue_dir: Path) -> list[str]:
    """Overrides for a fast in-process run: tiny_bert, a real 64-example RTE slice, test profile."""
    return [
        "model=tiny_bert",
        "task=rte",
        "train=test",
        f"data.dir={glue_dir}",
        "data.train_subset=64",
        "data.eval_subset=32",
    ]


@pytest.fixture
def tiny_overrides(glue_dir) -> list[str]:
    """Fixture form of `tiny_overrides_for`."""
    return tiny_overrides_for(glue_dir)


class Killed(BaseException):
    """Stands in for SIGKILL in-process (a BaseException: no `except Exception` swallows it)."""


@pytest.fixture
def simulated_kill(monkeypatch):
    """SIGKILL at a `debug.kill_at` point becomes `Killed` (TERM and INT stay real signals)."""
    from prunepeft.run import faults as runs

    real = runs._kill

    def kill(signum: int) -> None:
        if signum == signal.SIGKILL:
            raise Killed()
        real(signum)

    monkeypatch.setattr(runs, "_kill", kill)


def cli_ok(args: list[str]) -> None:
    """`prunepeft <args>` in-process; the test fails unless it exits 0 (`Killed` passes through)."""
    from prunepeft import cli

    try:
        cli.main([str(a) for a in args])
    except SystemExit as stop:
        assert not stop.code
