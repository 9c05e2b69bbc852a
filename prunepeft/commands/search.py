"""`prunepeft search`: the PrunePEFT search (Algorithm 1) in one run directory.

Re-invoked on a finished run directory it skips; on an unfinished one it resumes from the last
finished round (see prunepeft.pruning.checkpoint).
"""
from __future__ import annotations

import logging
from pathlib import Path

import hydra
from omegaconf import DictConfig

from prunepeft.commands.common import run_in_hydra
from prunepeft.commands.display import print_found, print_result
from prunepeft.config.schema import register_configs
from prunepeft.io import read_json
from prunepeft.pruning.search import config_dict, search, validate  # noqa: F401  (validate: used by the CLI)
from prunepeft.runs import RunDir

log = logging.getLogger(__name__)


def run(cfg: DictConfig, run_dir: Path) -> dict:
    """Run or resume the search configured by `cfg` in `run_dir`; return summary.json's content."""
    rd = RunDir(run_dir)
    rd.check_config(config_dict(cfg))
    if rd.done:
        print(f"already finished: {rd.path} (delete it to run again)")
        return read_json(rd.file("summary.json"))
    try:
        summary = search(cfg, rd)
    except BaseException as err:  # the directory stays resumable; run.json says what happened
        rd.fail(f"{type(err).__name__}: {err}")
        raise
    rd.finish(summary)
    print_found(rd.path / "found_config.json")
    print_result(summary)
    return summary


register_configs()


@hydra.main(config_path="../conf", config_name="search", version_base="1.3")
def hydra_entry(cfg: DictConfig) -> None:
    """Hydra entry point of `prunepeft search`."""
    run_in_hydra(run, cfg)
