"""Adding a criterion (with a setting) and a unit type touches no file of the package (issue 13, Deliver 2).

Both toys live in tests/toy_extensions/ and reach the search only through the registries' public
functions; a tiny search (the golden tests' settings) then scores with the toy criterion, reading its
setting from `search.criterion_settings.<name>`, and prunes among the toy units.
"""
from __future__ import annotations

from dataclasses import fields

import pytest
from conftest import compose_config, tiny_overrides_for
from toy_extensions.toy_criterion import ToyScaledCriterion
from toy_extensions.toy_unit import ValueOnlyType

from prunepeft.config.schema import ThresholdConfig, ZerosConfig
from prunepeft.errors import UserError
from prunepeft.peft.units import UNIT_TYPES, register_unit_type, unregister_unit_type
from prunepeft.pruning.criteria import CRITERIA, CriterionContext, get_criterion, register_criterion, unregister_criterion

TINY = ["search.warmup.subset=16", "search.warmup.epochs=1", "search.warmup.snapshots=2",
        "search.retrain_epochs=0", "budget.params=2000", "search.k=2",
        "data.train_subset=32", "data.eval_subset=16"]


@pytest.fixture
def toys():
    before_criteria, before_units = list(CRITERIA), list(UNIT_TYPES)
    register_criterion(ToyScaledCriterion())
    register_unit_type(ValueOnlyType())
    try:
        yield
    finally:
        unregister_criterion("toy_scaled")
        unregister_unit_type("toy_value")
        assert list(CRITERIA) == before_criteria and list(UNIT_TYPES) == before_units


def test_toy_criterion_and_unit_type_run_a_search(toys, glue_dir, tmp_path):
    from prunepeft.commands import search as search_cmd
    from prunepeft.io import read_json, read_jsonl

    overrides = tiny_overrides_for(glue_dir) + TINY + [
        "strategy=hybrid", "search_space=[lora,toy_value]", "search.criteria=[weight,toy_scaled]",
        "+search.criterion_settings.toy_scaled.scale=3.0"]
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


def test_toy_setting_is_validated_and_unknown_entries_name_the_choices(toys, compose_cfg):
    cfg = compose_cfg("search", ["model=tiny_bert", "+search.criterion_settings.toy_scaled.scale=-1"])
    with pytest.raises(UserError, match="search.criterion_settings.toy_scaled.scale must be > 0"):
        CriterionContext.from_search_config(cfg.search, seed=0)
    cfg = compose_cfg("search", ["model=tiny_bert", "+search.criterion_settings.toy_scaled.scal=2"])
    with pytest.raises(UserError, match="unknown search.criterion_settings.toy_scaled key 'scal'; valid choices: scale"):
        CriterionContext.from_search_config(cfg.search, seed=0)
    cfg = compose_cfg("search", ["model=tiny_bert", "+search.criterion_settings.weight.x=2"])
    with pytest.raises(UserError, match="criterion_settings entry 'weight'; valid choices: threshold, toy_scaled, zeros"):
        CriterionContext.from_search_config(cfg.search, seed=0)
    ctx = CriterionContext.from_search_config(compose_cfg("search", ["model=tiny_bert"]).search, seed=0)
    assert ctx.settings_of(get_criterion("toy_scaled")).scale == 1.0  # the settings class's default


def test_both_spellings_reach_a_built_in_criterion(compose_cfg):
    a = CriterionContext.from_search_config(compose_cfg("search", ["search.zeros.rel_tol=0.3"]).search, seed=0)
    b = CriterionContext.from_search_config(
        compose_cfg("search", ["+search.criterion_settings.zeros.rel_tol=0.3"]).search, seed=0)
    assert a.settings == b.settings == CriterionContext(zeros_rel_tol=0.3).settings


def test_schema_sections_agree_with_the_criteria_settings_defaults():
    # search.zeros / search.threshold keep their spelling in the schema; the criteria own the defaults
    for name, section in (("zeros", ZerosConfig), ("threshold", ThresholdConfig)):
        owned = get_criterion(name).settings()
        assert {f.name: getattr(section(), f.name) for f in fields(section)} == \
               {f.name: getattr(owned, f.name) for f in fields(owned)}


def test_register_refuses_a_taken_name_and_built_ins_stay():
    with pytest.raises(ValueError, match="already registered"):
        register_criterion(get_criterion("zeros"))
    with pytest.raises(ValueError, match="built in"):
        unregister_criterion("zeros")
    with pytest.raises(ValueError, match="built in"):
        unregister_unit_type("lora")
