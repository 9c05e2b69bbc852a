"""Every option of every config group composes (and validates) for search and baseline; typos fail early."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from prunepeft.config.schema import ModelConfig, RunConfig, TaskConfig, register_configs
from prunepeft.metrics import METRICS, check_task_metrics
from prunepeft.models.families import FAMILIES
from prunepeft.train.device import check_train_config

CONF = Path(__file__).resolve().parents[1] / "prunepeft" / "conf"
GROUPS = {"search": ("model", "task", "train", "strategy"), "baseline": ("model", "task", "train")}


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def validated(cfg) -> RunConfig:
    """Resolve every interpolation and build the typed RunConfig (fails on a missing/wrong-typed value)."""
    OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    return OmegaConf.to_object(cfg)


CASES = [(command, group, option) for command, groups in GROUPS.items() for group in groups for option in options(group)]


@pytest.mark.parametrize("command, group, option", CASES, ids=[f"{c}-{g}={o}" for c, g, o in CASES])
def test_every_group_option_composes(compose_cfg, command, group, option):
    cfg = compose_cfg(command, [f"{group}={option}"])
    run = validated(cfg)
    assert run.command == command
    check_task_metrics(run.task)  # primary metric among the task's metrics, every name known
    check_train_config(run.train)
    if group in ("model", "task"):
        assert getattr(run, group).name == option  # the file's `name` matches its file name


@pytest.mark.parametrize("command", GROUPS)
@pytest.mark.parametrize("experiment", [o for o in options("experiment") if o != "common"])
def test_every_experiment_preset_composes(compose_cfg, command, experiment):
    for scale in ("cpu", "paper"):
        run = validated(compose_cfg(command, [f"experiment={experiment}", f"scale={scale}"]))
        assert run.command == command


@pytest.mark.parametrize("launcher", options("hydra/launcher"))
def test_launcher_presets_compose(launcher):
    text = (CONF / "hydra" / "launcher" / f"{launcher}.yaml").read_text()
    plugin = "hydra_plugins.hydra_submitit_launcher" if "submitit" in text else "hydra_plugins.hydra_joblib_launcher"
    if importlib.util.find_spec(plugin) is None:
        pytest.skip(f"{plugin} not installed (optional `sweeps` extra)")
    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_module(config_module="prunepeft.conf", version_base="1.3"):
        cfg = compose(config_name="search", overrides=[f"hydra/launcher={launcher}"], return_hydra_config=True)
    GlobalHydra.instance().clear()
    assert "_target_" in cfg.hydra.launcher


@pytest.mark.parametrize("override", ["train.lrr=1", "lr=1", "model.lora_rank=8", "search.warmup.epoch=2",
                                      "task.primary=accuracy", "train.epochs=two"])
def test_typo_or_bad_type_fails_at_compose_time(compose_cfg, override):
    with pytest.raises(Exception, match=override.split("=")[0].split(".")[-1]):
        compose_cfg("baseline", [override])


def test_typo_inside_a_yaml_file_fails_at_compose_time(compose_cfg, tmp_path):
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "typo.yaml").write_text("epochs: 1\nlr_pef: 1e-3\n")
    with pytest.raises(Exception, match="lr_pef"):
        compose_cfg("baseline", [f"hydra.searchpath=[file://{tmp_path}]", "train=typo"])


@pytest.mark.parametrize("task", options("task"))
def test_task_metadata(task):
    t = OmegaConf.merge(OmegaConf.structured(TaskConfig), OmegaConf.load(CONF / "task" / f"{task}.yaml"))
    assert t.primary_metric in t.metrics
    assert set(t.metrics) <= set(METRICS)
    assert 1 <= len(t.text_fields) <= 2
    assert t.eval_splits and t.train_split == "train"
    if task == "stsb":
        assert t.num_labels == 1 and set(t.metrics) == {"pearson", "spearman"}
    elif task == "mnli":
        assert t.num_labels == 3 and list(t.eval_splits) == ["validation_matched", "validation_mismatched"]
    else:
        assert t.num_labels == 2 and list(t.eval_splits) == ["validation"]
    # Paper: MCC for CoLA, Pearson for STS-B, accuracy for the others.
    assert t.primary_metric == {"cola": "mcc", "stsb": "pearson"}.get(task, "accuracy")


@pytest.mark.parametrize("model", options("model"))
def test_model_metadata(model):
    raw = OmegaConf.load(CONF / "model" / f"{model}.yaml")
    raw.pop("defaults", None)  # the tiny models' budget default (a Hydra defaults list, not a model key)
    m = OmegaConf.merge(OmegaConf.structured(ModelConfig), raw)
    assert m.family in FAMILIES
    if model.startswith("tiny_"):
        assert m.kind == "tiny" and m.tiny.num_hidden_layers == 4  # one layer per partition block
    else:
        assert m.kind == "pretrained" and m.hub_id
    sizes = {"minilm_l6": (16, 64), "roberta_large": (32, 128)}  # docs/method.md#sizes; the paper
    if model in sizes:
        assert (m.lora_r, m.adapter_bottleneck) == sizes[model]


def test_train_profiles():
    defaults = OmegaConf.load(CONF / "train" / "default.yaml")
    assert (defaults.epochs, defaults.batch_size, defaults.max_length) == (20, 32, 256)  # the paper's
    assert OmegaConf.load(CONF / "train" / "cpu.yaml").epochs <= 2


def test_every_scale_takes_the_papers_reading_by_the_lean_default_rule(compose_cfg):
    """benchmarks/rules/lean_default.md, D1: agreement + zscore retrains no better than the paper's reading
    and pays a probe, so every scale runs the paper's reading (tendency + Eq. (1)); CPU-sized scales keep
    reinit=keep (BENCHMARKS §8.3), the paper scale the paper's re-initialisation."""
    for scale, reinit in (("smoke", "keep"), ("cpu", "keep"), ("gpu", "keep"), ("paper", "paper")):
        cfg = validated(compose_cfg("search", ["experiment=table5", f"scale={scale}"]))
        assert (cfg.search.warmup.assign, cfg.strategy.combine, cfg.search.reinit) == ("tendency", "paper", reinit), scale
    plain = validated(compose_cfg("search", []))
    assert (plain.search.warmup.assign, plain.strategy.combine, plain.search.warmup.lr) == ("tendency", "paper", None)


def test_scale_smoke_is_tiny_and_one_seed(compose_cfg):
    cfg = validated(compose_cfg("search", ["experiment=table2", "scale=smoke", "model=tiny_bert", "train=test"]))
    assert (cfg.data.train_subset, cfg.data.eval_subset, cfg.search.warmup.subset, cfg.search.warmup.epochs) == (32, 16, 16, 1)
    extra = compose_cfg("search", ["experiment=table2", "scale=smoke"]).extra
    smoke = extra.scales.smoke  # what the sweeper sets: the model, the profile, one seed
    assert (smoke.model, smoke.train, str(smoke.seeds)) == ("tiny_bert", "test", "1") and extra.preset == "table2"

def test_a_bad_scale_or_a_preset_without_m_is_one_line_and_exit_2(tmp_path):
    import subprocess
    import sys

    for args, message in ((["-m", "experiment=table5", "scale=nope"],
                           "scale=nope is not a scale of the table presets; valid choices: smoke, cpu, gpu, paper"),
                          (["experiment=table2", "scale=smoke"], "experiment=table2 is a sweep preset: add -m")):
        proc = subprocess.run([sys.executable, "-m", "prunepeft.cli", "search", *args], cwd=tmp_path,
                              capture_output=True, text=True)
        assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
        assert not any(tmp_path.iterdir())  # nothing written


def test_scale_cpu_warms_up_for_the_epochs_d2_chose(compose_cfg):
    """benchmarks/rules/lean_default.md D2, decided by the committed warm-up runs: the first candidate
    whose warm-up learns in 6 of 6 (SST-2, RTE) x seeds 1-3 pairs is 8 epochs at train.lr_peft."""
    from benchmarks.lib import lean_default

    epochs, lr = lean_default.decide_warmup()["default"]
    for scale in ("cpu", "gpu"):
        cfg = validated(compose_cfg("search", ["experiment=table5", f"scale={scale}"]))
        assert (cfg.search.warmup.epochs, cfg.search.warmup.lr) == (epochs, lr) == (8, None), scale
