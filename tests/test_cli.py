"""The `prunepeft` dispatcher: usage, bad commands and overrides, --help, the installed script, the wheel."""
from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from prunepeft import cli
from prunepeft.run.io import read_json

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "prunepeft" / "conf"
SCRIPT = Path(sys.executable).parent / "prunepeft"


def run_cli(argv, capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["prunepeft", *argv])  # cli.main rewrites sys.argv; restore it
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


@pytest.mark.parametrize("argv", [[], ["nope"], ["train"]])
def test_missing_or_unknown_command_lists_commands(argv, capsys, monkeypatch):
    code, out, err = run_cli(argv, capsys, monkeypatch)
    assert code == 2
    for command in ("search", "baseline", "report", "export"):
        assert f"  {command}" in out + err
    if argv:
        assert f"unknown command {argv[0]!r}" in err


def test_help_exits_zero(capsys, monkeypatch):
    code, out, _ = run_cli(["--help"], capsys, monkeypatch)
    assert code == 0 and "baseline" in out


@pytest.mark.parametrize("override, expected", [
    ("task=nope", ["task/nope", "cola", "mnli", "rte", "sst2", "stsb"]),
    ("model=nope", ["model/nope", "minilm_l6", "tiny_bert", "roberta_large"]),
    ("train=nope", ["train/nope", "cpu", "default", "test"]),
    ("train.lrr=1", ["train.lrr", "valid keys", "lr_peft", "lr_head", "lr_backbone", "grad_accum"]),
    ("seed=abc", ["seed", "abc"]),
])
def test_bad_override_exit_2_with_choices(override, expected, capsys, monkeypatch):
    code, out, err = run_cli(["baseline", override], capsys, monkeypatch)
    assert code == 2
    assert err.startswith("error: bad override for `prunepeft baseline`")
    for text in expected:
        assert text in err, (text, err)
    assert "Traceback" not in out + err


def test_explain_reads_hydra_exception_types_not_their_text():
    """The group, option and choices come from MissingConfigException's attributes, not its message."""
    from hydra.errors import ConfigCompositionException, MissingConfigException

    err = MissingConfigException("any text\nConfig search path:\n\tpkg://x", missing_cfg_file="task/nope",
                                 options=["rte", "sst2"])
    assert cli._explain(err, "baseline") == \
        "In 'baseline': Could not find 'task/nope'\n\nAvailable options in 'task':\n\trte\n\tsst2"
    assert cli._explain(MissingConfigException("x", missing_cfg_file="a/b/nope", options=[]), "search") == \
        "Could not find 'a/b/nope'"
    assert cli._explain(ConfigCompositionException("  plain  "), "search") == "plain"  # no omegaconf cause


def test_unknown_method_is_a_clean_user_error(glue_dir, tmp_path, capsys, monkeypatch):
    run_dir = tmp_path / "run"
    argv = ["baseline", "model=tiny_bert", "method=nope", f"data.dir={glue_dir}", f"hydra.run.dir={run_dir}"]
    code, out, err = run_cli(argv, capsys, monkeypatch)
    assert code == 2
    assert "unknown method 'nope'; valid choices: adapter, dora, fft, found, head, houlsby, lora" in err
    # checked before Hydra runs: not even the run directory (.hydra/, the job log) is created
    assert "Traceback" not in out + err and not run_dir.exists()


def test_bad_search_key_is_caught_before_any_directory(tmp_path, capsys, monkeypatch):
    run_dir = tmp_path / "run"
    code, _, err = run_cli(["search", "model=tiny_bert", "strategy=single", "strategy.criterion=magnitude",
                            f"hydra.run.dir={run_dir}"], capsys, monkeypatch)
    assert code == 2 and "unknown criterion 'magnitude'; valid choices:" in err and not run_dir.exists()
    GlobalHydra.instance().clear()


@pytest.mark.parametrize("command", ["search", "baseline"])
def test_command_help_lists_config_groups(command, capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["prunepeft"])
    try:
        cli.main([command, "--help"])
    except SystemExit as stop:
        assert stop.code in (0, None)
    finally:
        GlobalHydra.instance().clear()
    out = capsys.readouterr().out
    assert "Config groups" in out
    for group in ("model:", "task:", "train:", "experiment:"):
        assert group in out
    assert "tiny_bert" in out and "rte" in out
    # key descriptions, about a screen (not the ~110-line composed config)
    assert "budget.percent=0.75" in out and "train.lr_peft" in out and "--cfg job" in out
    assert len(out.splitlines()) <= 50


# Groups each command's page lists: those of its own defaults list (export reads no model or task).
PAGE_GROUPS = {"search": ["experiment", "logger", "model", "strategy", "task", "train"],
               "baseline": ["experiment", "logger", "model", "task", "train"],
               "evaluate": ["task"], "report": [], "export": [], "predict": []}


@pytest.mark.parametrize("command", list(cli.COMMANDS))
def test_every_command_has_its_own_help_page(command, capsys, monkeypatch):
    code, out, _ = run_cli([command, "--help"], capsys, monkeypatch)
    assert code == 0 and out.startswith(f"prunepeft {command} ") and "Powered by Hydra" not in out
    assert f"Example:  prunepeft {command} " in out and "== Keys ==" in out and "$" not in out.replace("$PRUNE", "")
    listed = [line.split(":")[0] for line in out.split("== Keys ==")[0].splitlines()
              if ": " in line and not line.startswith(("prunepeft", "Example"))]
    assert [g for g in listed if g in PAGE_GROUPS["search"]] == PAGE_GROUPS[command], out
    # the page's example parses as the command's overrides (it runs as printed, given a run directory)
    example = shlex.split(out.split("Example:  ")[1].splitlines()[0])[2:]
    example = [a for a in cli._flag_options(command, example)]
    assert cli._parse(example)


# Each answers without importing torch or transformers; the bound is generous (a loaded 2-core CI
# machine), the measured numbers are in BENCHMARKS (0.05-0.5 s).
FAST_CALLS = [(["--help"], None), (["--version"], None), *(([c, "--help"], None) for c in cli.COMMANDS),
              (["-sc", "query=bash"], "prunepeft se"), (["-sc", "query=bash"], "prunepeft search task="),
              (["-sc", "install=bash"], None), (["search", "--cfg", "job"], None)]


@pytest.mark.subprocess
@pytest.mark.parametrize("argv, comp_line", FAST_CALLS, ids=lambda v: " ".join(v) if isinstance(v, list) else str(v))
def test_help_version_and_completion_are_fast_and_import_no_torch(argv, comp_line):
    import json
    import time

    probe = ("import json, sys\nfrom prunepeft import cli\ntry:\n    cli.main(sys.argv[1:])\n"
             "except SystemExit as stop:\n    code = stop.code\nelse:\n    code = 0\n"
             "print('PROBE' + json.dumps({'code': code, 'heavy': sorted(m for m in ('torch', 'transformers', "
             "'peft', 'datasets', 'pandas') if m in sys.modules)}))\n")
    env = {**os.environ, **({"COMP_LINE": comp_line, "COMP_POINT": str(len(comp_line))} if comp_line else {})}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", probe, *argv], capture_output=True, text=True, env=env, timeout=60)
    wall = time.perf_counter() - start
    result = json.loads(done.stdout.rsplit("PROBE", 1)[1])
    assert result == {"code": 0, "heavy": []}, (result, done.stderr[-2000:])
    assert wall < 5.0, f"prunepeft {' '.join(argv)} took {wall:.1f} s"


def test_version(capsys, monkeypatch):
    code, out, _ = run_cli(["--version"], capsys, monkeypatch)
    assert code == 0 and out.strip().startswith("prunepeft 0.")


@pytest.mark.parametrize("line, expected, absent", [
    ("prunepeft se", ["search"], ["baseline"]),
    ("prunepeft ", ["search", "baseline", "report", "export"], []),
    ("prunepeft search task=", ["task=rte", "task=sst2", "task=cola"], []),
    ("prunepeft baseline model=", ["model=tiny_bert", "model=minilm_l6"], []),
])
def test_shell_completion_query(line, expected, absent, capsys, monkeypatch):
    """What bash's completion function asks (`prunepeft -sc query=bash` with COMP_LINE set)."""
    monkeypatch.setenv("COMP_LINE", line)
    monkeypatch.setenv("COMP_POINT", str(len(line)))
    try:
        code, out, _ = run_cli(["-sc", "query=bash"], capsys, monkeypatch)
    finally:
        GlobalHydra.instance().clear()
    words = out.split()
    assert code == 0 and all(w in words for w in expected) and not any(w in words for w in absent), out


def test_shell_completion_install_binds_prunepeft(capsys, monkeypatch):
    try:
        code, out, _ = run_cli(["-sc", "install=bash"], capsys, monkeypatch)
    finally:
        GlobalHydra.instance().clear()
    assert code == 0 and out.rstrip().endswith("hydra_bash_completion prunepeft")


def test_sweep_functions_go_through_hydras_parser():
    """range()/choice()/glob() sweeps compose (each value once); a non-multirun sweep is refused."""
    assert cli.validate_overrides("baseline", ["-m", "model=tiny_bert", "seed=range(1,3)",
                                               "method=choice(lora,adapter)", "task=glob(rt*)"]) is None
    parsed = cli._parse(["seed=range(1,3)", "task=rte,sst2", "train=test"])
    assert cli._trials(parsed, multirun=True) == [["seed=1", "task=rte", "train=test"],
                                                  ["seed=2", "task=rte", "train=test"],
                                                  ["seed=1", "task=sst2", "train=test"]]
    # a value the command refuses fails only its own jobs (tests/test_multirun.py); all refused: nothing runs
    assert cli.validate_overrides("baseline", ["-m", "model=tiny_bert", "seed=range(1,3)", "method=lora,nope"]) is None
    error = cli.validate_overrides("baseline", ["-m", "model=tiny_bert", "seed=range(1,3)", "method=nope,nada"])
    assert "unknown method 'nope'" in error
    assert "bad override" in cli.validate_overrides("baseline", ["seed=range(1,3)"])  # no -m
    assert "bad override" in cli.validate_overrides("baseline", ["seed=range(1,"])  # unparsable


def test_experiment_preset_without_plus():
    assert cli.validate_overrides("search", ["-m", "experiment=table5", "scale=cpu"]) is None


def test_tiny_model_budget_works_and_a_too_small_budget_fails_before_any_directory(tmp_path, capsys, monkeypatch):
    from prunepeft.commands.search import check_budget_early
    from tests.conftest import compose_config

    assert check_budget_early(compose_config("search", ["model=tiny_bert", "train=test"])) > 552
    run_dir = tmp_path / "run"
    code, out, err = run_cli(["search", "model=tiny_bert", "train=test", "budget.percent=0.75",
                              f"hydra.run.dir={run_dir}"], capsys, monkeypatch)
    assert code == 2 and "below the smallest unit (512 parameters)" in err and "Traceback" not in err
    assert not run_dir.exists()


@pytest.mark.subprocess
def test_installed_script_runs_a_baseline(glue_dir, tmp_path):
    """The one subprocess smoke test: the installed console script, from a foreign working directory."""
    assert SCRIPT.exists(), SCRIPT
    out = tmp_path / "run"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [str(SCRIPT), "baseline", "model=tiny_bert", "task=rte", "train=test", "method=lora",
         f"data.dir={glue_dir}", "data.train_subset=32", "data.eval_subset=16", f"hydra.run.dir={out}"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (out / "DONE").exists() and (out / ".hydra" / "config.yaml").exists()
    summary = read_json(out / "summary.json")
    assert summary["method"] == "lora" and summary["params"]["peft"] > 0
    assert "validation accuracy =" in proc.stdout
    record = (out / ".hydra" / "config.yaml").read_text()
    assert "method=lora" in (out / ".hydra" / "overrides.yaml").read_text()
    # the same directory with another lr: refused before anything is (re)written, .hydra/ included
    again = subprocess.run([*proc.args, "train.lr_peft=5e-4"], cwd=tmp_path, env=env, capture_output=True,
                           text=True, timeout=300)
    assert again.returncode == 2 and "Traceback" not in again.stderr
    assert "different configuration (train.lr_peft: 0.001 -> 0.0005)" in again.stderr + again.stdout
    assert (out / ".hydra" / "config.yaml").read_text() == record


@pytest.mark.subprocess
def test_wheel_ships_every_config(tmp_path):
    """A plain `pip install .` gets conf/ as package data: build the wheel and look inside."""
    src = tmp_path / "src"
    shutil.copytree(REPO / "prunepeft", src / "prunepeft", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        if (REPO / name).exists():
            shutil.copy(REPO / name, src / name)
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(tmp_path / "dist"), str(src)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (wheel,) = (tmp_path / "dist").glob("prunepeft-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    # conf/ and the extension points' own YAMLs (pruning/criteria/zeros.yaml, peft/units/lora.yaml, ...)
    yamls = sorted(str(p.relative_to(REPO)) for p in (REPO / "prunepeft").rglob("*.yaml"))
    assert "prunepeft/conf/search.yaml" in yamls and "prunepeft/conf/baseline.yaml" in yamls
    assert "prunepeft/peft/units/lora.yaml" in yamls and "prunepeft/pruning/criteria/zeros.yaml" in yamls
    assert len([y for y in yamls if "/task/" in y]) == 9
    missing = [y for y in yamls if y not in names]
    assert not missing, missing
    # ... and the shipped files compose on their own.
    zipfile.ZipFile(wheel).extractall(tmp_path / "site")
    from prunepeft.config.schema import register_configs

    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(tmp_path / "site" / "prunepeft" / "conf"), version_base="1.3"):
        cfg = compose(config_name="baseline", overrides=["model=tiny_bert", "task=stsb"])
    GlobalHydra.instance().clear()
    assert cfg.task.num_labels == 1 and cfg.model.family == "bert"


@pytest.mark.parametrize("umask, file_mode, dir_mode", [(0o022, 0o644, 0o755), (0o002, 0o664, 0o775)])
def test_outputs_are_readable_by_collaborators(umask, file_mode, dir_mode, tmp_path):
    """Atomic writes (mkstemp makes 0600) get the mode open() would give: 0666/0777 minus the umask."""
    from prunepeft.run.io import atomic_write_json
    from prunepeft.run.record import RunDir

    old = os.umask(umask)
    try:
        rd = RunDir(tmp_path / "run")
        path = atomic_write_json(rd.file("sub/summary.json"), {"a": 1})
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == file_mode
    assert rd.path.stat().st_mode & 0o777 == dir_mode and path.parent.stat().st_mode & 0o777 == dir_mode


def test_baseline_logs_banner_epochs_and_summary(tiny_overrides, tmp_path, caplog):
    """Off a terminal the log is the only progress: banner, one line per epoch with ETA, final line."""
    import logging

    from prunepeft.commands.baseline import run
    from tests.conftest import compose_config

    cfg = compose_config("baseline", [*tiny_overrides, "method=lora", "train.epochs=2", "data.train_subset=16"])
    with caplog.at_level(logging.INFO, logger="prunepeft"):
        run(cfg, tmp_path / "run")
    lines = [r.getMessage() for r in caplog.records if r.name == "prunepeft"]
    assert lines[0].startswith("prunepeft baseline | run dir") and "seed 42 | model tiny_bert | task rte" in lines[0]
    epochs = [line for line in lines if line.startswith("train epoch")]
    assert len(epochs) == 2 and "train loss" in epochs[0] and "validation.accuracy=" in epochs[0]
    assert "ETA" in epochs[0] and "elapsed" in epochs[0]
    assert lines[-1].startswith("finished in") and "rte validation accuracy" in lines[-1]
