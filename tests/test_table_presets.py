"""The paper-table presets (`experiment=table2` ... `table6`) as Hydra's sweeper expands them, and the make
targets that run them (`make -n`): the commands `make tables` runs, checked without running them."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from prunepeft.config.schema import register_configs

REPO = Path(__file__).resolve().parents[1]
needs_make = pytest.mark.skipif(shutil.which("make") is None, reason="make not installed")


# --- experiment presets: each table's sweep, as Hydra's sweeper will expand it ---------------------

def _sweep(command: str, overrides: list[str]) -> tuple[dict, object]:
    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_module(config_module="prunepeft.conf", version_base="1.3"):
        cfg = compose(config_name=command, overrides=overrides, return_hydra_config=True)
    GlobalHydra.instance().clear()
    return OmegaConf.to_container(cfg.hydra.sweeper.params, resolve=True), cfg


CPU = {"model": "minilm_l6", "train": "cpu", "task": "rte,sst2,cola,stsb", "seed": "1,2,3"}


@pytest.mark.parametrize("command,table,expected", [
    ("baseline", "table2", {**CPU, "method": "fft,adapter,lora,dora", "search.fidelity": "high"}),
    ("search", "table2", {**CPU, "method": "fft", "search.fidelity": "high,low"}),
    ("baseline", "table3", {**CPU, "model": "tiny_llama", "task": "rte", "method": "lora,dora"}),
    ("search", "table4", {**CPU, "method": "fft", "search.fidelity": "high,low"}),
    ("search", "table5", {**CPU, "task": "sst2,cola", "strategy.name": "none,random,hybrid_no_partition,hybrid"}),
    ("search", "table6", {**CPU, "task": "sst2,stsb", "extra.source": "rte,cola", "method": "fft"}),
    ("baseline", "table6", {**CPU, "task": "sst2,stsb", "extra.source": "rte,cola", "method": "found"}),
])
def test_experiment_presets_cpu_sweeps(command, table, expected):
    params, _ = _sweep(command, [f"experiment={table}", "scale=cpu"])
    assert params == expected


def test_experiment_presets_paper_scale_and_transfer_paths():
    params, _ = _sweep("baseline", ["experiment=table2", "scale=paper"])
    assert params["model"] == "roberta_large" and params["task"] == "rte,mrpc,stsb,cola,sst2,qnli,qqp,mnli"
    _, cfg = _sweep("search", ["experiment=table6", "task=sst2", "extra.source=rte", "seed=2", "train=cpu"])
    source = "outputs/cpu/rte/minilm_l6/search/hybrid-None-high-from_none/lr0.001-s2"
    assert cfg.strategy.from_run == source and cfg.run == source
    assert cfg.hydra.sweep.dir + "/" + cfg.hydra.sweep.subdir == source.replace("/rte/", "/sst2/").replace(
        "from_none", "from_rte")
    params, cfg = _sweep("search", ["experiment=table6", "extra.stage=sources"])
    assert params["task"] == "rte,cola,sst2,stsb" and params["extra.source"] == "none"
    assert cfg.strategy.from_run is None


def test_slurm_preset_does_not_break_other_configs():
    _sweep("search", ["experiment=table5", "hydra/launcher=joblib"])  # installed launcher composes
    try:
        import hydra_plugins.hydra_submitit_launcher  # noqa: F401
    except ImportError:
        with pytest.raises(Exception, match="submitit_slurm"):
            _sweep("search", ["hydra/launcher=slurm"])
    else:  # the dev extra installs it (tests/test_submitit.py runs its local executor)
        _, cfg = _sweep("search", ["experiment=table5", "hydra/launcher=slurm"])
        assert cfg.hydra.launcher._target_.endswith("SlurmLauncher") and cfg.hydra.launcher.timeout_min == 720


def _dry_run_commands(cwd, *targets, env=None):
    """The prunepeft command lines `make -n` would run, whatever the checkout's path.

    `--no-print-directory` and the `make[N]:` filter keep make's own "Entering directory '…/prunepeft'" lines
    out: under `make test` the inner make prints them, and the README's clone path contains "prunepeft".
    """
    out = subprocess.run(["make", "--no-print-directory", "-n", "-f", "Makefile", "-f", "make/tables.mk",
                          *targets], cwd=cwd, capture_output=True, text=True, check=True, env=env)
    return [" ".join(l.split()) for l in out.stdout.splitlines()
            if "prunepeft " in l and not l.startswith("make")]


@needs_make
def test_make_targets_dry_run():
    lines = _dry_run_commands(REPO, "table5", "SEEDS=1", "CRITERIA=taylor", "TABLES_DEPS=")
    assert lines == [
        ".venv/bin/prunepeft search -m experiment=table5 scale=cpu extra.runs_root=outputs/cpu seed=1",
        ".venv/bin/prunepeft search -m experiment=table5 scale=cpu extra.runs_root=outputs/cpu seed=1 "
        "strategy.name=single strategy.criterion=taylor",
        # the type-matched random arm, after the hybrid runs it matches
        ".venv/bin/prunepeft search -m experiment=table5 scale=cpu extra.runs_root=outputs/cpu seed=1 "
        "strategy.name=random_matched",
        # equal compute for warm starts (issue 22, item 5): the warm-retrain hybrid, then LoRA matched to it
        ".venv/bin/prunepeft search -m experiment=table5 scale=cpu extra.runs_root=outputs/cpu seed=1 "
        "strategy.name=hybrid search.retrain_init=warm",
        ".venv/bin/prunepeft baseline -m experiment=table5 scale=cpu extra.runs_root=outputs/cpu seed=1 "
        "strategy.name=hybrid method=lora extra.equal_compute=true",
        ".venv/bin/prunepeft report runs=outputs/cpu out=reports/cpu 'tables=[table5]'",
    ]


@needs_make
def test_make_table2_runs_lora_at_equal_parameters_after_the_searches():
    lines = _dry_run_commands(REPO, "table2", "SEEDS=1", "TABLES_DEPS=")
    assert lines == [
        ".venv/bin/prunepeft baseline -m experiment=table2 scale=cpu extra.runs_root=outputs/cpu seed=1",
        ".venv/bin/prunepeft search -m experiment=table2 scale=cpu extra.runs_root=outputs/cpu seed=1",
        # claim (a'): uniform LoRA sized to each PrunePEFT run's found parameter count (match_params)
        ".venv/bin/prunepeft baseline -m experiment=table2 scale=cpu extra.runs_root=outputs/cpu seed=1 "
        "method=lora extra.equal_params=true",
        ".venv/bin/prunepeft report runs=outputs/cpu out=reports/cpu 'tables=[table2]'",
    ]


@needs_make
def test_make_targets_dry_run_from_a_clone_named_prunepeft_under_make(tmp_path):
    """The README clones into `prunepeft/`, and `make test` runs the suite with MAKELEVEL set, so an inner make
    prints "Entering directory '…/prunepeft'". The dry-run commands must depend on neither."""
    clone = tmp_path / "work" / "prunepeft"
    (clone / "make").mkdir(parents=True)
    shutil.copy(REPO / "Makefile", clone / "Makefile")
    shutil.copy(REPO / "make" / "tables.mk", clone / "make" / "tables.mk")
    env = {**os.environ, "MAKELEVEL": "1"}
    args = ("table5", "SEEDS=1", "CRITERIA=taylor", "TABLES_DEPS=")
    lines = _dry_run_commands(clone, *args, env=env)
    assert lines == _dry_run_commands(REPO, *args)
    assert len(lines) == 6 and all(l.startswith(".venv/bin/prunepeft ") for l in lines)
