"""Adding a criterion and a unit type, each with a setting of its own, touches no file of the package
(issue 13, Deliver 2: one file + one YAML per extension point).

Both toys live in tests/toy_extensions/ as one Python file + one YAML each, and reach the search only
through the registries' public functions: the toy criterion's YAML becomes `search.toy_scaled`, the
toy unit type's becomes `model.toy_rank`. A tiny search (the golden tests' settings) then scores with
the toy criterion at its configured scale and prunes among toy units of the configured rank.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import fields, make_dataclass
from pathlib import Path

import pytest
from conftest import compose_config, tiny_overrides_for
from hydra.errors import ConfigCompositionException
from toy_extensions.toy_criterion import ToyScaledCriterion
from toy_extensions.toy_unit import ValueOnlyType

from prunepeft.config.extensions import read_settings, settings_files, yaml_beside
from prunepeft.errors import UserError
from prunepeft.peft.units import UNIT_TYPES, UnitSizes, register_unit_type, unregister_unit_type
from prunepeft.pruning.criteria import CRITERIA, CriterionContext, get_criterion, register_criterion, unregister_criterion

TINY = ["search.warmup.subset=16", "search.warmup.epochs=1", "search.warmup.snapshots=2",
        "search.retrain_epochs=0", "budget.params=2000", "search.k=2",
        "data.train_subset=32", "data.eval_subset=16"]
PACKAGE = Path(__file__).resolve().parents[1] / "prunepeft"


@pytest.fixture
def toys():
    before = list(CRITERIA), list(UNIT_TYPES), settings_files("criterion"), settings_files("unit")
    register_criterion(ToyScaledCriterion())
    register_unit_type(ValueOnlyType())
    try:
        yield
    finally:
        unregister_criterion("toy_scaled")
        unregister_unit_type("toy_value")
        assert (list(CRITERIA), list(UNIT_TYPES), settings_files("criterion"), settings_files("unit")) == before


def test_toy_criterion_and_unit_type_run_a_search(toys, glue_dir, tmp_path):
    from prunepeft.commands import search as search_cmd
    from prunepeft.run.io import read_json, read_jsonl

    overrides = tiny_overrides_for(glue_dir) + TINY + [
        "strategy=hybrid", "search_space=[lora,toy_value]", "search.criteria=[weight,toy_scaled]",
        "search.toy_scaled.scale=3.0", "model.toy_rank=3"]
    search_cmd.run(compose_config("search", overrides), tmp_path)

    rounds = read_jsonl(tmp_path / "rounds.jsonl")
    assert rounds
    for row in rounds:
        toy, weight = row["criteria"]["toy_scaled"]["oriented"], row["criteria"]["weight"]["oriented"]
        assert set(toy) == set(weight) and toy  # the toy scored every active unit ...
        assert toy == pytest.approx({u: 3.0 * v for u, v in weight.items()})  # ... reading its own setting
    seen = {u for row in rounds for u in row["active_before"]}
    assert any(u.endswith(":toy_value") for u in seen)
    found = read_json(tmp_path / "found_config.json")
    assert set(found["search_space"]) == {"lora", "toy_value"}
    toy_units = [u for layer in found["layers"] for u in layer["units"] if u["type"] == "toy_value"]
    assert toy_units, "the budget should leave some toy units"
    hidden = found["hidden_size"]
    for unit in toy_units:  # its own size setting, recorded and counted: rank 3 on the value projection
        assert unit["sizes"] == {"toy_rank": 3}
        assert unit["params"] == 3 * (hidden + hidden)


def test_the_toy_unit_type_is_a_uniform_baseline_too(toys, compose_cfg, tiny_overrides, tmp_path):
    from prunepeft.commands import baseline

    summary = baseline.run(compose_cfg("baseline", [*tiny_overrides, "method=toy_value", "model.toy_rank=3",
                                                    "train.epochs=1"]), tmp_path)
    params = summary["params"]
    assert params["peft"] == 4 * 3 * (32 + 32)  # tiny_bert: 4 layers, value projection 32 -> 32, rank 3
    assert params["sizes"]["toy_rank"] == 3
    assert params["sizes"]["lora_r"] == 4  # the built-ins' knobs, as before
    summary = baseline.run(compose_cfg("baseline", [*tiny_overrides, "method=toy_value", "size_to_budget=true",
                                                    "budget.params=700", "train.epochs=1"]), tmp_path / "sized")
    assert summary["params"]["sizes"]["toy_rank"] == 2  # the largest rank within B: 4 x 2 x 64 = 512 <= 700


def test_the_toys_settings_are_composed_typed_and_checked(toys, compose_cfg):
    cfg = compose_cfg("search", ["model=tiny_bert"])
    assert cfg.search.toy_scaled.scale == 1.0 and cfg.model.toy_rank == 2  # their YAMLs' defaults
    assert cfg.model.lora_r == 4  # tiny_bert.yaml still overrides a built-in's
    with pytest.raises(ConfigCompositionException):
        compose_cfg("search", ["search.toy_scaled.scal=2"])  # a typo fails at compose time
    with pytest.raises(ConfigCompositionException):
        compose_cfg("search", ["model.toy_rank=three"])  # typed by the YAML's default
    cfg = compose_cfg("search", ["model=tiny_bert", "search.toy_scaled.scale=-1"])
    with pytest.raises(UserError, match="search.toy_scaled.scale must be > 0"):
        CriterionContext.from_search_config(cfg.search, seed=0)
    with pytest.raises(UserError, match="model.toy_rank must be >= 1"):
        UnitSizes.from_model(compose_cfg("search", ["model.toy_rank=0"]).model)
    assert UnitSizes.from_model(compose_cfg("search", ["model.toy_rank=5"]).model).toy_rank == 5


def test_a_registered_type_may_share_another_registered_types_settings(toys, compose_cfg):
    """As DoRA shares LoRA's: a subclass of the toy type keeps its settings (and YAML), composed once."""

    class Twin(ValueOnlyType):
        name = "toy_twin"

    register_unit_type(Twin())
    try:
        assert compose_cfg("search", ["model.toy_rank=3"]).model.toy_rank == 3
    finally:
        unregister_unit_type("toy_twin")


def test_criterion_settings_mapping_still_applies_on_top(toys, compose_cfg):
    cfg = compose_cfg("search", ["model=tiny_bert", "+search.criterion_settings.toy_scaled.scal=2"])
    with pytest.raises(UserError, match="unknown search.criterion_settings.toy_scaled key 'scal'; valid choices: scale"):
        CriterionContext.from_search_config(cfg.search, seed=0)
    cfg = compose_cfg("search", ["model=tiny_bert", "+search.criterion_settings.weight.x=2"])
    with pytest.raises(UserError, match="criterion_settings entry 'weight'; valid choices: (?=.*threshold)(?=.*toy_scaled)"):
        CriterionContext.from_search_config(cfg.search, seed=0)
    cfg = compose_cfg("search", ["search.toy_scaled.scale=2", "+search.criterion_settings.toy_scaled.scale=4"])
    assert CriterionContext.from_search_config(cfg.search, seed=0).settings_of(get_criterion("toy_scaled")).scale == 4


def test_unregistered_toys_leave_no_key_behind(compose_cfg):
    cfg = compose_cfg("search", [])
    assert "toy_rank" not in cfg.model and "toy_scaled" not in cfg.search


def test_both_spellings_reach_a_built_in_criterion(compose_cfg):
    a = CriterionContext.from_search_config(compose_cfg("search", ["search.zeros.rel_tol=0.3"]).search, seed=0)
    b = CriterionContext.from_search_config(
        compose_cfg("search", ["+search.criterion_settings.zeros.rel_tol=0.3"]).search, seed=0)
    assert a.settings == b.settings == CriterionContext(zeros_rel_tol=0.3).settings


def _defaults(settings_class: type) -> dict:
    return {f.name: getattr(settings_class(), f.name) for f in fields(settings_class)}


@pytest.mark.parametrize("kind", ["criterion", "unit"])
def test_every_settings_class_has_a_yaml_beside_it_with_the_same_defaults(toys, kind):
    owners = CRITERIA.values() if kind == "criterion" else UNIT_TYPES.values()
    classes = {o.settings for o in owners if o.settings is not None}
    assert len(classes) >= 3  # zeros, threshold, toy / lora, adapter, toy
    for settings_class in classes:
        path = yaml_beside(settings_class)
        assert path is not None, f"{settings_class.__name__} has no YAML beside its file"
        assert read_settings(path) == _defaults(settings_class)
        assert path in settings_files(kind).values()  # ... and it is composed into the config


def test_the_composed_defaults_are_the_settings_defaults(compose_cfg):
    cfg = compose_cfg("search", ["model=minilm_l6"])
    for name in ("zeros", "threshold"):
        assert dict(cfg.search[name]) == _defaults(get_criterion(name).settings)
    bare = compose_cfg("search", ["model=tiny_bert", "model.lora_r=8", "model.lora_alpha=16", "model.adapter_bottleneck=64"])
    assert UnitSizes.from_model(bare.model) == UnitSizes()


def test_the_package_never_names_the_toys():
    hits = [str(p) for p in PACKAGE.rglob("*") if p.is_file() and p.suffix in (".py", ".yaml")
            and ("toy_value" in p.read_text() or "toy_scaled" in p.read_text() or "toy_rank" in p.read_text())]
    assert hits == []


def test_register_refuses_a_taken_name_a_foreign_setting_and_built_ins_stay():
    with pytest.raises(ValueError, match="already registered"):
        register_criterion(get_criterion("zeros"))
    with pytest.raises(ValueError, match="built in"):
        unregister_criterion("zeros")
    with pytest.raises(ValueError, match="built in"):
        unregister_unit_type("lora")

    class Thief(ValueOnlyType):  # a size setting named like LoRA's, in a settings class of its own
        name = "thief"
        settings = make_dataclass("ThiefSettings", [("lora_r", int, 2)], frozen=True)

    with pytest.raises(ValueError, match="setting 'lora_r' belongs to 'lora'"):
        register_unit_type(Thief())
    assert "thief" not in UNIT_TYPES


def _install_toy_plugin(site: Path) -> None:
    """A site directory holding the toy criterion as an installed distribution `toyplug`: its module and
    YAML, and a dist-info whose entry_points.txt declares it in the `prunepeft.criteria` group."""
    package = site / "toyplug"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    for name in ("toy_criterion.py", "toy_criterion.yaml"):
        shutil.copy(Path(__file__).parent / "toy_extensions" / name, package / name)
    info = site / "toyplug-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: toyplug\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[prunepeft.criteria]\ntoy_scaled = toyplug.toy_criterion:ToyScaledCriterion\n")


@pytest.mark.subprocess
def test_an_installed_plugin_criterion_runs_from_the_command_line(glue_dir, tmp_path):
    """`prunepeft search` finds a criterion another distribution declares as an entry point, composes
    its YAML as `search.<name>`, takes a setting for it from the command line, and scores with it."""
    site = tmp_path / "site"
    _install_toy_plugin(site)
    out = tmp_path / "run"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(PACKAGE.parent), str(site)])}
    proc = subprocess.run(
        [sys.executable, "-m", "prunepeft.cli", "search", *tiny_overrides_for(glue_dir), *TINY, "strategy=hybrid",
         "search.criteria=[weight,toy_scaled]", "search.toy_scaled.scale=3.0", f"hydra.run.dir={out}"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    from prunepeft.run.io import read_json, read_jsonl

    rounds = read_jsonl(out / "rounds.jsonl")
    assert rounds
    for row in rounds:
        toy, weight = row["criteria"]["toy_scaled"]["oriented"], row["criteria"]["weight"]["oriented"]
        assert toy and toy == pytest.approx({u: 3.0 * v for u, v in weight.items()})
    assert read_json(out / "run.json")["config"]["search"]["toy_scaled"] == {"scale": 3.0}
    # without the site directory the same command line knows no such criterion
    env["PYTHONPATH"] = str(PACKAGE.parent)
    bare = subprocess.run([*proc.args[:-1], f"hydra.run.dir={tmp_path / 'bare'}"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert bare.returncode != 0 and "toy_scaled" in bare.stderr
